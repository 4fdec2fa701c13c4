"""Cost of a decision as the bundle grows: 10, 1,000 and 10,000 policies.

Each size is a generated bundle that looks real (bench/generate.py). Our
figure is ``decide()`` (slicing on, explanation as for an allow) for a
pre-verified principal; the baseline is raw ``cedarpy.is_authorized`` on the
full policy set with pre-parsed handles (entities already holding the
principal), on the same request. Requests rotate over 64 (workload, dataset)
pairs that the bundle's per-workload permits allow, so every size measures the
same kind of decision (an allow) and caches see a mix rather than one key.
The 10-policy bundle allows only a couple of distinct pairs, so the flatness
rows (10,000 against 10, alternating in one comparison) are printed three times: as
rotated, with the 10,000-policy rotation cut to as many distinct requests, and
like for like: 64 distinct requests at both, the 10 policies' from a bundle of the
same 10 policies with more datasets, whose group permits allow 64 distinct pairs
(found by asking raw Cedar; ``WIDE_ENTITIES``).

The answer memo (:mod:`pdp.engine.answer_memo`) is off in these bundles: a rotation of 64
requests would otherwise time its lookups, not the engine's work per decision. What the
memo saves on repeated questions is measured over HTTP (``bench.loop_thread``,
``bench.cerbos_peer``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cedarpy

from bench.generate import generate_bundle
from bench.harness import Comparison, compare
from context.model import LiveSnapshot
from pdp.decision.decide import cedar_context, decide, principal_entity
from pdp.decision.model import ResourceRef
from pdp.engine import load_bundle
from pdp.identity.model import VerifiedIdentity

SIZES = (10, 1000, 10000)
NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
ROTATION = 64
WIDE_ENTITIES = 400
"""Entities of the 10-policy bundle for the like-for-like row: enough datasets in the
folders and domains its group permits name for 64 distinct allowed requests."""


def run() -> list[Comparison]:
    rows, rotations, distinct = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="pdp-scale-") as tmp:
        for size in SIZES:
            row, rotations[size], distinct[size] = _measure(Path(tmp) / str(size), size)
            rows.append(row)
        # The two sizes in alternating rounds of one comparison (medians from separate
        # runs on a shared machine differ by more than the ratio measured), twice: as
        # rotated (the small bundle allows only a few distinct requests, the large one 64,
        # whose entity sets and slices do not all stay in the CPU's caches), and with the
        # large bundle's rotation cut to as many distinct requests as the small one has.
        large, small = SIZES[-1], SIZES[0]
        _, wide, wide_distinct = _measure(Path(tmp) / f"{small}-wide", small,
                                          entities=WIDE_ENTITIES)
        for label, few, baseline in (
                (f"{distinct[large]} distinct requests at {large:,}, {distinct[small]} at {small}",
                 None, rotations[small]),
                (f"{distinct[small]} distinct requests at both", distinct[small], rotations[small]),
                (f"like for like: {distinct[large]} distinct requests at {large:,}, "
                 f"{wide_distinct} at {small} ({WIDE_ENTITIES} entities)", None, wide)):
            large_us, small_us = compare(rotations[large](few), baseline(None),
                                         rounds=15, per_round=300, warmup=ROTATION * 2)
            rows.append(Comparison(f"decide() at {large:,} vs at {small} policies ({label})",
                                   large_us, small_us, f"decide() at {small} policies", "≤ 1.5",
                                   at_most=1.5))
            print(f"scale: decide() at {large:,} policies is {large_us / small_us:.2f}x its "
                  f"cost at {small} ({label})")
    return rows


def _measure(directory: Path, size: int, entities: int | None = None,
             ) -> tuple[Comparison, Callable[[int | None], Callable[[], object]], int]:
    """The row against raw cedarpy at ``size``, our rotation (or its first few distinct
    requests), and how many distinct requests the rotation holds. With ``entities``,
    the rotation is the first 64 requests raw Cedar allows, not the per-workload permits'."""
    generate_bundle(directory, policies=size, entities=entities)
    bundle = load_bundle(directory, answer_memo_bytes=0)
    live = LiveSnapshot(now=NOW, incident=False, risk_level=0, business_hours=True)
    requests = []
    static = json.loads((directory / "entities.json").read_text())
    pairs = (_allowed_pairs(directory, ROTATION) if entities is None
             else _allowed_by_cedar(bundle, static, live, ROTATION))
    for workload, dataset in pairs:
        identity = VerifiedIdentity(
            principal_id=workload, kind="jwt-svid", issuer="spiffe://example.org",
            trust_domain="example.org", path=workload.removeprefix("spiffe://example.org"),
            issued_at=NOW - timedelta(seconds=30), expires_at=NOW + timedelta(minutes=5))
        resource = ResourceRef("Gen::Dataset", dataset)
        requests.append((identity, resource, _raw_request(bundle, static, identity, resource, live)))

    def rotating(few: int | None) -> Callable[[], object]:
        """decide() over the rotation, or over its first ``few`` distinct requests."""
        chosen = requests if few is None else list({
            (identity.principal_id, resource.id): (identity, resource, raw)
            for identity, resource, raw in requests}.values())[:few]
        turn = {"i": 0}

        def ours() -> object:
            identity, resource, _ = chosen[turn["i"] % len(chosen)]
            turn["i"] += 1
            return decide(bundle, identity=identity, action="read", resource=resource,
                          context={}, live=live, now=NOW)

        return ours

    ours = rotating(None)
    state = {"i": 0}

    def raw() -> object:
        _, _, (request, entities) = requests[state["i"] % ROTATION]
        state["i"] += 1
        return cedarpy.is_authorized(request, bundle.policy_set, entities, schema=bundle.schema)

    for identity, resource, (request, entities) in requests[:8]:  # the same answers
        a = decide(bundle, identity=identity, action="read", resource=resource, context={},
                   live=live, now=NOW)
        b = cedarpy.is_authorized(request, bundle.policy_set, entities, schema=bundle.schema)
        assert a.allowed and b.allowed, (a.explanation, b.diagnostics.errors)
    ours_us, raw_us = compare(ours, raw, rounds=9, per_round=300, warmup=ROTATION * 2,
                              baseline_per_round=max(5, min(300, int(3000 / size))))
    return (Comparison(f"decide() vs raw cedarpy, {size:,} policies", ours_us, raw_us,
                       "raw cedarpy.is_authorized, full set", "ours ≥ 100× faster at 10,000"
                       if size == 10000 else "—",
                       faster_at_least=100 if size == 10000 else None), rotating,
            len({(identity.principal_id, resource.id) for identity, resource, _ in requests}))


def _raw_request(bundle, static, identity, resource, live):
    action = bundle.actions.resolve("read")
    principal = principal_entity(identity)
    parents = next((e["parents"] for e in static if e["uid"] == principal.uid), [])
    entities = [e for e in static if e["uid"]["type"] != "Pdp::Workload"]
    entities.append({"uid": principal.uid, "attrs": dict(principal.attrs), "parents": parents})
    handle = cedarpy.Entities.from_json_str(json.dumps(entities), bundle.schema)
    request = {"principal": principal.uid, "action": {"type": action.type, "id": action.id},
               "resource": {"type": resource.type, "id": resource.id},
               "context": cedar_context(action, {}, live, identity, NOW)}
    return request, handle




def _allowed_by_cedar(bundle, static, live, count: int) -> list[tuple[str, str]]:
    """The first ``count`` (workload, dataset) reads raw cedarpy allows on the full set."""
    workloads = [e["uid"]["id"] for e in static if e["uid"]["type"] == "Pdp::Workload"]
    datasets = [e["uid"]["id"] for e in static if e["uid"]["type"] == "Gen::Dataset"]
    found: list[tuple[str, str]] = []
    for dataset in datasets:
        for workload in workloads:
            identity = VerifiedIdentity(
                principal_id=workload, kind="jwt-svid", issuer="spiffe://example.org",
                trust_domain="example.org", path=workload.removeprefix("spiffe://example.org"),
                issued_at=NOW - timedelta(seconds=30), expires_at=NOW + timedelta(minutes=5))
            request, handle = _raw_request(bundle, static, identity,
                                           ResourceRef("Gen::Dataset", dataset), live)
            if cedarpy.is_authorized(request, bundle.policy_set, handle,
                                     schema=bundle.schema).allowed:
                found.append((workload, dataset))
                if len(found) == count:
                    return found
    raise ValueError(f"the bundle allows {len(found)} distinct reads, fewer than {count}")


def _allowed_pairs(directory: Path, count: int) -> list[tuple[str, str]]:
    """(workload, dataset) pairs of the bundle's `principal == W ... resource == D` read
    permits (their conditions all hold under the default live context used here)."""
    import re

    text = (directory / "policies.cedar").read_text()
    found = re.findall(r'permit \(principal == Pdp::Workload::"([^"]+)", '
                       r'action == Gen::Action::"read", resource == Gen::Dataset::"([^"]+)"\)', text)
    pairs = list(dict.fromkeys(found))
    return [pairs[i % len(pairs)] for i in range(count)]
