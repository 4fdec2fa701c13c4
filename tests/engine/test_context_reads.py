"""Cedar gets only the context a request's policy slice can read
(``pdp.engine.context_reads``); on one warm bundle, every request is raw Cedar's.

The policies read the context in each way that must keep a value whole (``has``
on a record, ``==`` between records, ``has`` on the context itself, a set's
``contains``) and one that reads a part (``context.a.x``). Contexts differ where
the policies look, so cutting a value too far changes an answer. What a
validated bundle cannot do (read an attribute the request lacks, read into an
entity reference) is checked on ``read_part`` itself.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import cedarpy
import pytest

from context.model import LiveSnapshot
from pdp.decision.decide import decide
from pdp.decision.model import ResourceRef
from pdp.engine import load_bundle
from pdp.engine.bundle import Bundle
from pdp.engine.context_reads import context_reads, read_part
from pdp.identity.model import VerifiedIdentity
from tests.cedar_reference import determining_ids, raw_decision
from tests.conftest import MONDAY_10

SCHEMA = """namespace App {
  entity Doc;
  type Inner = { x: Long, y?: Long, tags?: Set<String> };
  action "act" appliesTo { principal: [Pdp::Workload], resource: [Doc],
                           context: { a: Inner, c: Inner, n?: Long } };
}
"""
# Each document's slice reads the context differently: d1 a part of `a` and all of `c`,
# d2 both records whole (compared), d3 the context itself (`has` alone), d4 `n` if given.
POLICIES = """@id("x-is-2") @reason("a.x is 2.")
permit (principal, action, resource == App::Doc::"d1") when { context.a.x == 2 };
@id("tagged") @reason("c is tagged red.")
permit (principal, action, resource == App::Doc::"d1")
  when { context.c has tags && context.c.tags.contains("red") };
@id("c-is-a") @reason("c equals a.")
permit (principal, action, resource == App::Doc::"d2") when { context.c == context.a };
@id("has-n") @reason("n is given.")
permit (principal, action, resource == App::Doc::"d3") when { context has n };
@id("n-is-5") @reason("Never n 5.")
forbid (principal, action, resource == App::Doc::"d4") when { context has n && context.n == 5 };
"""
CONTEXTS: list[dict[str, Any]] = [
    {"a": {"x": 2}, "c": {"x": 2}},
    {"a": {"x": 2, "y": 1}, "c": {"x": 2}},
    {"a": {"x": 1, "y": 1}, "c": {"x": 1, "y": 1}},
    {"a": {"x": 1}, "c": {"x": 1, "tags": ["red"]}},
    {"a": {"x": 1, "tags": ["red"]}, "c": {"x": 1, "tags": ["blue"]}},
    {"a": {"x": 1}, "c": {"x": 1}, "n": 1},
    {"a": {"x": 1}, "c": {"x": 1}, "n": 5},
]


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    (tmp_path / "schema.cedarschema").write_text(SCHEMA)
    (tmp_path / "policies.cedar").write_text(POLICIES)
    (tmp_path / "entities.json").write_text("[]")
    return load_bundle(tmp_path)


@pytest.mark.parametrize("order", ["forwards", "backwards"])
def test_every_context_is_decided_as_raw_cedar_decides_it(bundle: Bundle, order: str) -> None:
    raw_policies = cedarpy.PolicySet.from_str(POLICIES)
    live = LiveSnapshot(now=MONDAY_10, incident=False, risk_level=0, business_hours=True)
    identity = VerifiedIdentity(
        principal_id="spiffe://example.org/w", kind="jwt-svid", issuer="spiffe://example.org",
        trust_domain="example.org", path="/w", issued_at=MONDAY_10 - timedelta(seconds=5),
        expires_at=MONDAY_10 + timedelta(minutes=5))
    contexts = CONTEXTS if order == "forwards" else CONTEXTS[::-1]
    for _ in range(2):  # the second time every shape is known: Cedar runs without the schema
        for context, doc in ((c, d) for c in contexts for d in ("d1", "d2", "d3", "d4")):
            resource = ResourceRef("App::Doc", doc)
            ours = decide(bundle, identity=identity, action="act", resource=resource,
                          context=context, live=live, now=MONDAY_10)
            raw = raw_decision(SCHEMA, raw_policies, [], identity=identity,
                               action=("App::Action", "act"), resource=resource,
                               context=context, live=live, now=MONDAY_10,
                               declares=frozenset())
            step = f"{doc} {context}: {ours.explanation}"
            assert raw.decision != cedarpy.Decision.NoDecision, raw.diagnostics.errors
            errored = sorted(e.policy for e in ours.errors if e.policy is not None)
            assert errored == sorted(_policy(e, raw_policies) for e in raw.diagnostics.errors)
            if errored:  # a forbid that errors denies (README), naming it
                assert ours.decision == "deny", step
                continue
            assert ours.decision == ("allow" if raw.allowed else "deny"), step
            assert sorted(r.policy for r in ours.reasons) == determining_ids(raw), step


def _policy(error: str, policies: cedarpy.PolicySet) -> str:
    by_cedar_id = {cid: dict(node.annotations)["id"]
                   for cid, node in policies.to_pst().static_policies.items()}
    return next(by_cedar_id[cid] for cid in by_cedar_id if f"`{cid}`" in error)


def test_the_part_read_keeps_whole_what_is_read_whole() -> None:
    policies = cedarpy.policies_to_pst(POLICIES).static_policies.values()
    reads = context_reads(policies)
    assert reads is None  # `context has n` reads the context itself
    d1 = [p for p in policies if dict(p.annotations)["id"] in ("x-is-2", "tagged")]
    reads = context_reads(d1)
    assert reads == {"a": {"x": None}, "c": None}
    context = {"a": {"x": 1, "y": 2}, "c": {"x": 2, "y": 5}, "n": 1}
    assert read_part(context, reads) == {"a": {"x": 1}, "c": {"x": 2, "y": 5}}
    # An attribute the request lacks: the record it is read from stays whole.
    assert read_part({"a": {"y": 1}, "c": {}}, reads) == {"a": {"y": 1}, "c": {}}
    # An entity reference or extension value is never cut into.
    entity = {"__entity": {"type": "App::Doc", "id": "d"}}
    assert read_part({"a": entity, "c": {}}, reads) == {"a": entity, "c": {}}
