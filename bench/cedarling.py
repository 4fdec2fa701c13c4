"""A peer, side by side: Janssen Cedarling's unsigned path against our embedded path.

Both decide the same request over the same policies, in one process, in
alternating rounds (:func:`bench.harness.compare`):

- **ours**: ``decide()`` on a loaded ``Bundle`` with a pre-verified identity (the
  embedded path: what a PEP linking the engine pays; no HTTP, no decision log);
- **Cedarling**: ``Cedarling.authorize_unsigned`` (``cedarling-python`` from PyPI)
  with the principal and resource as ``EntityData`` and the very context
  ``decide()`` hands Cedar (``context.live``, ``context.credential``), logging off;
- **raw cedarpy** (reference): ``cedarpy.is_authorized`` with pre-parsed handles.

The bundles are those of ``bench.embedded_cases`` (10, 100 and 1,000 policies).
Cedarling's policy store is the same text, one policy per file
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
from pathlib import Path
from typing import Any

from bench import embedded_cases
from bench.embedded_cases import SCHEMA, SIZES, policies
from bench.harness import Comparison, compare, record, table
from pdp.engine.pdp_schema import pdp_schema_cedar

STORE_ID = "9e96b204911d1c37"  # Cedarling wants a hex id of 8-64 characters


def write_store(root: Path, n: int) -> Path:
    """Cedarling's policy store directory: the same policies, one per file."""
    store = root / f"cedarling-{n}"
    (store / "policies").mkdir(parents=True)
    (store / "schema.cedarschema").write_text(pdp_schema_cedar().replace("__cedar::", "") + SCHEMA)
    (store / "metadata.json").write_text(json.dumps({
        "cedar_version": "4.4.0",
        "policy_store": {"id": STORE_ID, "name": f"bench {n}", "version": "1.0.0"}}))
    for k, text in enumerate(policies(n)):
        (store / "policies" / f"p{k:05d}.cedar").write_text(text + "\n")
    return store


class Case(embedded_cases.Case):
    """One size: ours (both resource forms), raw cedarpy, and Cedarling."""

    def __init__(self, root: Path, n: int) -> None:
        import cedarling_python as cl

        super().__init__(root, n)
        self.cedarling = cl.Cedarling(cl.BootstrapConfig({
            "CEDARLING_APPLICATION_NAME": "pdp-bench",
            "CEDARLING_POLICY_STORE_LOCAL_FN": str(write_store(root, n)),
            "CEDARLING_LOG_TYPE": "off"}))
        self.request = cl.RequestUnsigned(
            action=f'Cmp::Action::"{self.action}"',
            resource=cl.EntityData.from_dict({
                "cedar_entity_mapping": {"entity_type": "Cmp::Dataset", "id": self.resource.id},
                **self.attrs}),
            context=self.context,
            principal=cl.EntityData.from_dict({
                "cedar_entity_mapping": {"entity_type": self.principal.type,
                                         "id": self.principal.id},
                **dict(self.principal.attrs or {})}))

    def theirs(self) -> Any:
        return self.cedarling.authorize_unsigned(self.request)

    def check(self) -> None:
        """The same answer from all three, or the timing means nothing."""
        super().check()
        theirs = self.theirs()
        assert theirs.is_allowed(), theirs.response.diagnostics.errors
        assert set(theirs.response.diagnostics.reason) == {self.expected}


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
                ours_us, theirs_us, "Cedarling authorize_unsigned", "≤ 1.0 (issues 8, 16)",
                at_most=1.0))
            vs_cedarling.append(Comparison(
                f"{n:,} policies: decide() (embedded), resource from entities.json",
                static_us, theirs3_us, "Cedarling authorize_unsigned", "≤ 1.0 (issues 8, 16)",
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
            "(pdp.engine.slicing) with only the context they read (pdp.engine.context_reads), "
            "Cedarling and raw cedarpy evaluate every policy with the whole context."]
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
