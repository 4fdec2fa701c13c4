"""A digest of the decision records and answers ``decide()`` + ``decision_record`` make
for seeded inputs: two trees that print the same digest record byte for byte the same.

For checking that a change to the decision path keeps every record's content. Seeded
(``--seed``, ``--count``): principals known to the example bundle and others, groups and
scopes, three credential kinds, delegated identities (an actor), identities with and
without their credential's hash, every example action and an unknown one, a reserved
context key (refused before Cedar runs), live snapshots at any microsecond. Identities
repeat as the verifier's cache hands them out (the same object); where the tree's
``decide()`` and ``decision_record`` take an identity memo (``parts``), one is shared
across all inputs, as a ``DecisionService`` shares its own. The policy version's git
commit and label are left out (each tree has its own); the policies' SHA-256 stays.

    python -m bench.records_digest [--seed 16 --count 3000]        # this tree
    cd /tmp && PYTHONPATH=/other/tree python -c 'import runpy; runpy.run_path(
        "/this/tree/bench/records_digest.py", run_name="__main__")'  # another tree's pdp
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import inspect
import random
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from context.model import LiveSnapshot
from pdp.decision import record as records
from pdp.decision.decide import decide
from pdp.decision.model import AuthorizeInput, ResourceRef
from pdp.engine import load_bundle
from pdp.identity.model import BearerToken, VerifiedIdentity

POLICIES = Path(__file__).resolve().parents[1] / "policies"
START = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
PRINCIPALS = ["spiffe://example.org/agents/reporter", "spiffe://example.org/services/etl",
              "spiffe://example.org/services/admin-console",
              "spiffe://example.org/oncall/responder", "spiffe://partner.example/x", "client-1"]
GROUPS = ["analytics", "pipelines", "data-admins", "agents", "incident-responders", "other"]
SCOPES = ["billing:call", "inventory:call", "datasets:write"]
RESOURCES = [("App::Dataset", "sales-daily"), ("App::Dataset", "customer-pii"),
             ("App::Dataset", "ledger"), ("App::Api", "billing"), ("App::Api", "inventory"),
             ("App::Dataset", "nope")]
ACTIONS = ["read", "write", "delete", "export", "call", "nope"]
ETL = "spiffe://example.org/services/etl"


def _identity(rng: random.Random, n: int) -> VerifiedIdentity:
    pid = rng.choice(PRINCIPALS)
    spiffe = pid.startswith("spiffe://")
    td, _, path = pid.removeprefix("spiffe://").partition("/") if spiffe else ("", "", "")
    issued = START - timedelta(seconds=rng.randint(0, 7200))
    who = VerifiedIdentity(
        principal_id=pid, kind=rng.choice(["jwt-svid", "x509-svid", "jwt"]), issuer="iss",
        trust_domain=td, path=f"/{path}" if spiffe else "",
        scopes=frozenset(rng.sample(SCOPES, rng.randint(0, 2))),
        groups=frozenset(rng.sample(GROUPS, rng.randint(0, 3))),
        issued_at=issued, expires_at=issued + timedelta(hours=1))
    if rng.random() < 0.2:
        who = replace(who, actor=ETL, chain_depth=1, actor_chain=(ETL,))
    if rng.random() < 0.3:
        who = replace(who, credential_sha256=f"{n:064x}")
    return who


def _memo() -> Any:
    if importlib.util.find_spec("pdp.decision.identity_parts") is None:
        return None
    from pdp.decision.identity_parts import IdentityParts
    return IdentityParts()


def _without_commit(doc: dict[str, Any]) -> dict[str, Any]:
    version = doc.get("policy_version")
    if version:
        doc["policy_version"] = {k: v for k, v in version.items() if k not in ("commit", "label")}
    return doc


def digest(seed: int = 16, count: int = 3000) -> tuple[str, int]:
    """The SHA-256 of ``count`` records and answers, and how many identities they had."""
    bundle = load_bundle(POLICIES)
    rng = random.Random(seed)
    memo = _memo()
    decide_kw = {"parts": memo} if "parts" in inspect.signature(decide).parameters else {}
    record_kw = ({"parts": memo}
                 if "parts" in inspect.signature(records.decision_record).parameters else {})
    identities: list[VerifiedIdentity] = []
    out = hashlib.sha256()
    for n in range(count):
        if not identities or rng.random() < 0.3:
            identities.append(_identity(rng, n))
        who = rng.choice(identities[-8:])  # the same objects again, as the cache serves them
        action = rng.choice(ACTIONS)
        resource = ResourceRef(*rng.choice(RESOURCES))
        context: dict[str, Any] = ({"method": "GET"} if action == "call"
                                   else {"purpose": "x"} if rng.random() < 0.5 else {})
        if rng.random() < 0.05:
            context = {"credential": {"age_s": 1}}  # reserved: refused before Cedar runs
        live = LiveSnapshot(
            now=START + timedelta(minutes=rng.randint(0, 900),
                                  microseconds=rng.choice([0, rng.randint(0, 999_999)])),
            incident=rng.random() < 0.2, risk_level=rng.randint(0, 3),
            business_hours=rng.random() < 0.5)
        decision = decide(bundle, identity=who, action=action, resource=resource,
                          context=context, live=live, now=live.now,
                          decision_id=lambda n=n: f"d{n}", **decide_kw)
        request = AuthorizeInput(credential=BearerToken(f"t{n}"), action=action,
                                 resource=resource, context=context, request_id=f"r{n}")
        record = records.decision_record(
            decision, request, latency_us=7, instance="host:1", bundle=bundle,
            credential_sha256=None if rng.random() < 0.5 else "e" * 64, **record_kw)
        for doc in (record, decision.as_dict()):
            out.update(orjson.dumps(_without_commit(doc), option=orjson.OPT_SORT_KEYS) + b"\n")
    return out.hexdigest(), len(identities)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.records_digest")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--count", type=int, default=3000)
    args = parser.parse_args(argv)
    value, identities = digest(args.seed, args.count)
    print(f"{value}  {args.count} records and answers, {identities} identities, seed {args.seed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
