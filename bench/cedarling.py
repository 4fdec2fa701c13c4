"""A peer, side by side: Janssen Cedarling's unsigned path against our embedded path.

Both decide the same request over the same policies, in one process, in
alternating rounds (:func:`bench.harness.compare`):

- **ours**: ``decide()`` on a loaded ``Bundle`` with a pre-verified identity (the
  embedded path: what a PEP linking the engine pays; no HTTP, no decision log);
- **Cedarling**: ``Cedarling.authorize_unsigned`` (``cedarling-python`` from PyPI)
  with the principal and resource as ``EntityData`` and the very context
  ``decide()`` hands Cedar (``context.live``, ``context.credential``), logging off;
- **raw cedarpy** (reference): ``cedarpy.is_authorized`` with pre-parsed handles.

The bundle is generated at 10, 100 and 1,000 policies: per-workload permits on
single datasets with conditions on live context and credential age, a permit by
SPIFFE path prefix over a data domain every tenth policy, and two guards
(forbids). Cedarling's policy store is the same text, one policy per file
(directory format: ``metadata.json`` with a hex ``policy_store.id``, and every
policy keeps its ``@id``), with our ``Pdp`` namespace in its schema so the
principal is the same ``Pdp::Workload`` with the same attributes. The resource
is described in the request (type, id, attributes) on both sides.

    python -m bench cedarling
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cedarpy

from bench.harness import Comparison, compare, record, table
from context.calendar import BusinessCalendar
from context.memory import InMemoryContext
from pdp.decision.decide import cedar_context, decide, principal_entity
from pdp.decision.model import ResourceRef
from pdp.engine import load_bundle
from pdp.engine.pdp_schema import pdp_schema_cedar
from pdp.identity.model import VerifiedIdentity

SIZES = (10, 100, 1000)
STORE_ID = "9e96b204911d1c37"  # Cedarling wants a hex id of 8-64 characters
NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # a Monday, in business hours

SCHEMA = """
namespace Cmp {
  entity Dataset = { domain: String, sensitive: Bool };
  action "read", "write" appliesTo {
    principal: Pdp::Workload, resource: Dataset,
    context: { live: Pdp::Live, credential: Pdp::Credential },
  };
}
"""


def _workload(i: int) -> tuple[str, int]:
    team = i % 20
    return f"spiffe://example.org/team{team}/w{i}", team


def policies(n: int) -> list[str]:
    """``n`` policies, each with its own ``@id`` and ``@reason``."""
    out = [
        '@id("guard-incident") @reason("No writes to sensitive data during an incident.")\n'
        'forbid (principal, action == Cmp::Action::"write", resource)\n'
        "when { context.live.incident && resource.sensitive };",
        '@id("guard-risk") @reason("Nothing at critical risk.")\n'
        "forbid (principal, action, resource) when { context.live.risk_level >= 3 };",
    ]
    for i in range(n - len(out)):
        workload, team = _workload(i)
        if i % 10 == 9:
            out.append(
                f'@id("team-{i}") @reason("Team {team} reads its domain.")\n'
                f'permit (principal, action == Cmp::Action::"read", resource)\n'
                f'when {{ principal.path like "/team{team}/*" && resource.domain == "d{team}" '
                f"&& !resource.sensitive }};")
        else:
            action = "read" if i % 3 else "write"
            out.append(
                f'@id("w-{i}") @reason("Workload {i} uses dataset {i}.")\n'
                f'permit (principal == Pdp::Workload::"{workload}", '
                f'action == Cmp::Action::"{action}", resource == Cmp::Dataset::"ds{i}")\n'
                "when { context.live.risk_level < 2 && context.credential.age_s < 3600 };")
    return out


def dataset_attrs(i: int) -> dict[str, Any]:
    # Not the domain of its workload's team: only the per-workload permit applies.
    return {"domain": f"d{i % 20 + 1}", "sensitive": i % 5 == 0}


def write_bundles(root: Path, n: int) -> tuple[Path, Path]:
    """Our bundle directory and Cedarling's policy store directory, same policies."""
    ours, store = root / f"ours-{n}", root / f"cedarling-{n}"
    texts = policies(n)
    ours.mkdir(parents=True)
    (ours / "schema.cedarschema").write_text(SCHEMA)
    (ours / "policies.cedar").write_text("\n\n".join(texts) + "\n")
    (ours / "entities.json").write_text("[]")
    static = root / f"ours-static-{n}"  # the datasets defined by the bundle instead
    static.mkdir(parents=True)
    (static / "schema.cedarschema").write_text(SCHEMA)
    (static / "policies.cedar").write_text("\n\n".join(texts) + "\n")
    (static / "entities.json").write_text(json.dumps([
        {"uid": {"type": "Cmp::Dataset", "id": f"ds{i}"}, "attrs": dataset_attrs(i), "parents": []}
        for i in range(n)]))
    (store / "policies").mkdir(parents=True)
    (store / "schema.cedarschema").write_text(pdp_schema_cedar().replace("__cedar::", "") + SCHEMA)
    (store / "metadata.json").write_text(json.dumps({
        "cedar_version": "4.4.0",
        "policy_store": {"id": STORE_ID, "name": f"bench {n}", "version": "1.0.0"}}))
    for k, text in enumerate(texts):
        (store / "policies" / f"p{k:05d}.cedar").write_text(text + "\n")
    return ours, store


class Case:
    """One size: the three ways to decide the same request."""

    def __init__(self, root: Path, n: int) -> None:
        import cedarling_python as cl

        self.n = n
        ours_dir, store_dir = write_bundles(root, n)
        self.bundle = load_bundle(ours_dir)
        self.static_bundle = load_bundle(root / f"ours-static-{n}")
        k = (n - 2) // 2 // 10 * 10 + 1  # a per-workload permit in the middle of the bundle
        workload, team = _workload(k)
        self.expected = f"w-{k}"
        self.identity = VerifiedIdentity(
            principal_id=workload, kind="jwt-svid", issuer="spiffe://example.org",
            trust_domain="example.org", path=workload.removeprefix("spiffe://example.org"),
            issued_at=NOW - timedelta(seconds=30), expires_at=NOW + timedelta(minutes=5))
        attrs = dataset_attrs(k)
        self.resource = ResourceRef("Cmp::Dataset", f"ds{k}", attrs=attrs)
        self.static_resource = ResourceRef("Cmp::Dataset", f"ds{k}")
        self.action = "read" if k % 3 else "write"
        self.live = InMemoryContext(calendar=BusinessCalendar()).snapshot(None, NOW)
        action = self.bundle.actions.resolve(self.action)
        context = cedar_context(action, {}, self.live, self.identity, NOW)
        principal = principal_entity(self.identity)

        self.cedarling = cl.Cedarling(cl.BootstrapConfig({
            "CEDARLING_APPLICATION_NAME": "pdp-bench",
            "CEDARLING_POLICY_STORE_LOCAL_FN": str(store_dir),
            "CEDARLING_LOG_TYPE": "off"}))
        self.request = cl.RequestUnsigned(
            action=f'Cmp::Action::"{self.action}"',
            resource=cl.EntityData.from_dict({
                "cedar_entity_mapping": {"entity_type": "Cmp::Dataset", "id": self.resource.id},
                **attrs}),
            context=context,
            principal=cl.EntityData.from_dict({
                "cedar_entity_mapping": {"entity_type": principal.type, "id": principal.id},
                **dict(principal.attrs or {})}))

        self.entities = cedarpy.Entities.from_json_str(json.dumps([
            {"uid": principal.uid, "attrs": dict(principal.attrs or {}), "parents": []},
            {"uid": {"type": "Cmp::Dataset", "id": self.resource.id}, "attrs": attrs,
             "parents": []}]), self.bundle.schema)
        self.raw_request = {"principal": principal.uid,
                            "action": {"type": action.type, "id": action.id},
                            "resource": {"type": "Cmp::Dataset", "id": self.resource.id},
                            "context": context}

    def ours(self) -> Any:
        return decide(self.bundle, identity=self.identity, action=self.action,
                      resource=self.resource, context={}, live=self.live, now=NOW)

    def ours_static(self) -> Any:
        return decide(self.static_bundle, identity=self.identity, action=self.action,
                      resource=self.static_resource, context={}, live=self.live, now=NOW)

    def theirs(self) -> Any:
        return self.cedarling.authorize_unsigned(self.request)

    def raw(self) -> Any:
        return cedarpy.is_authorized(self.raw_request, self.bundle.policy_set, self.entities,
                                     schema=self.bundle.schema)

    def check(self) -> None:
        """The same answer from all three, or the timing means nothing."""
        ours, theirs, raw = self.ours(), self.theirs(), self.raw()
        for d in (ours, self.ours_static()):
            assert d.allowed, d.explanation
            assert [r.policy for r in d.reasons] == [self.expected], d.reasons
        assert theirs.is_allowed(), theirs.response.diagnostics.errors
        assert set(theirs.response.diagnostics.reason) == {self.expected}
        assert raw.allowed and [str(p) for p in raw.diagnostics.reasons] == [self.expected]


def run(sizes: tuple[int, ...] = SIZES, *,
        rounds: int = 15) -> tuple[list[Comparison], list[Comparison], dict[int, Case]]:
    """Per size: ours against Cedarling (both resource forms), Cedarling against raw cedarpy."""
    vs_cedarling, cedarling_vs_raw = [], []
    cases: dict[int, Case] = {}
    with tempfile.TemporaryDirectory(prefix="pdp-bench-cedarling-") as tmp:
        for n in sizes:
            case = cases[n] = Case(Path(tmp), n)
            case.check()
            per_round = max(20, min(300, int(30_000 / n)))
            ours_us, theirs_us = compare(case.ours, case.theirs, rounds=rounds,
                                         per_round=per_round, warmup=per_round)
            static_us, theirs3_us = compare(case.ours_static, case.theirs, rounds=rounds,
                                            per_round=per_round, warmup=per_round)
            raw_us, theirs2_us = compare(case.raw, case.theirs, rounds=rounds,
                                         per_round=per_round, warmup=per_round)
            vs_cedarling.append(Comparison(
                f"{n:,} policies: decide() (embedded), resource sent in the request",
                ours_us, theirs_us, "Cedarling authorize_unsigned", "≤ 1.0 (issue 8)",
                at_most=1.0))
            vs_cedarling.append(Comparison(
                f"{n:,} policies: decide() (embedded), resource from entities.json",
                static_us, theirs3_us, "Cedarling authorize_unsigned", "≤ 1.0 (issue 8)",
                at_most=1.0))
            cedarling_vs_raw.append(Comparison(
                f"{n:,} policies: Cedarling authorize_unsigned", theirs2_us, raw_us,
                "raw cedarpy.is_authorized", "reference"))
    return vs_cedarling, cedarling_vs_raw, cases


def profile(case: Case, calls: int = 3000, top: int = 12) -> str:
    """Where ``decide()``'s time goes on ``case`` (cProfile, own time per function)."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        case.ours()
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    total = sum(v[2] for _, v in rows)
    lines = ["| function | own time per decision (µs, under cProfile) | share |", "|---|---:|---:|"]
    for (path, line, name), (_, _ncalls, tottime, _cum, _) in rows[:top]:
        where = f"{Path(path).parent.name}/{Path(path).name}:{line}" if line else path
        lines.append(f"| `{name}` ({where}) | {tottime / calls * 1e6:.1f} | "
                     f"{tottime / total:.0%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cedarling")
    parser.add_argument("--sizes", type=lambda s: tuple(int(x) for x in s.split(",")),
                        default=SIZES, help="comma-separated policy counts [10,100,1000]")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    try:
        import cedarling_python  # noqa: F401
    except ImportError:
        print("bench cedarling: needs cedarling-python: pip install -e '.[bench]'",
              file=sys.stderr)
        return 1
    import importlib.metadata

    version = importlib.metadata.version("cedarling-python")
    vs_cedarling, cedarling_vs_raw, cases = run(args.sizes, rounds=args.rounds)
    body = [table(vs_cedarling), "", table(cedarling_vs_raw), "",
            f"cedarling-python {version}, cedarpy {importlib.metadata.version('cedarpy')}. "
            "Same request on all sides: a per-workload permit in the middle of the bundle "
            "allows it; ours evaluates the slice of policies whose scope can match "
            "(pdp.engine.slicing) where the bundle is indexed, Cedarling and raw cedarpy "
            "evaluate every policy."]
    slower = [c for c in vs_cedarling if c.ratio > 1.0]
    if slower:
        n = int(slower[0].name.split(" ")[0].replace(",", ""))
        body += ["", f"Where decide()'s time goes at {n:,} policies, resource sent in the "
                 "request (target not met there; cProfile inflates Python's share):", "",
                 profile(cases[n])]
    text = "\n".join(body)
    print(text)
    if not args.no_record:
        record("A peer: Cedarling (unsigned) against our embedded path",
               "python -m bench cedarling", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
