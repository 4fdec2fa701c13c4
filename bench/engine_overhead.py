"""decide() for a pre-verified principal against raw cedarpy on the same request.

Two baselines: ``cedarpy.is_authorized`` with pre-parsed handles (PolicySet,
Entities already holding the principal) and the Schema, and the same without
the schema (Cedar then neither type-checks the request nor reads it by the
schema's types), entity UIDs as ``{type, id}`` dicts, and the very context
decide() builds. decide() validates each request *shape* against the schema
once (pdp.engine.request_shapes), so it is measured against both.
decide() adds action resolution, the principal entity, live and credential
context, reasons, the explanation sentence and the Decision itself.
A third row runs a bundle whose context has an ``ipaddr`` attribute: such a
shape can never skip the schema (issue 14), so it costs what Cedar with the
schema costs.

Then the matrix of issue 16 on generated bundles (``bench.embedded_cases``): at
10, 100 and 1,000 policies, the resource described in the request or defined by
``entities.json``, decide() against raw cedarpy with and without the schema
(pre-parsed handles already holding the principal and the resource), each a row
with the target ≤ 1.1.

Every bundle here is loaded with the answer memo off (``answer_memo_bytes=0``): the same
request asked again would otherwise be a lookup, and these rows are the engine's own work
per decision; the memo's saving is measured over HTTP (``bench.loop_thread``).
"""

from __future__ import annotations

import json
import tempfile
from datetime import timedelta
from pathlib import Path

import cedarpy

from bench import embedded_cases
from bench.harness import Comparison, compare
from context.calendar import BusinessCalendar
from context.memory import InMemoryContext
from pdp.decision.decide import cedar_context, decide, principal_entity
from pdp.decision.model import ResourceRef
from pdp.engine import load_bundle
from pdp.identity.model import VerifiedIdentity

POLICIES = Path(__file__).resolve().parents[1] / "policies"


def run() -> list[Comparison]:
    bundle = load_bundle(POLICIES, answer_memo_bytes=0)
    from datetime import UTC, datetime

    now = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    live = InMemoryContext(calendar=BusinessCalendar()).snapshot(None, now)
    identity = VerifiedIdentity(
        principal_id="spiffe://example.org/services/etl", kind="jwt-svid",
        issuer="spiffe://example.org", trust_domain="example.org", path="/services/etl",
        issued_at=now - timedelta(seconds=30), expires_at=now + timedelta(minutes=5))
    resource = ResourceRef("App::Dataset", "sales-daily")
    action = bundle.actions.resolve("read")

    principal = principal_entity(identity)
    entities = bundle.entities.with_added_json_str(json.dumps([{
        "uid": principal.uid, "attrs": dict(principal.attrs),
        "parents": [{"type": "Pdp::Group", "id": "pipelines"}]}]))
    request = {"principal": principal.uid, "action": {"type": action.type, "id": action.id},
               "resource": {"type": resource.type, "id": resource.id},
               "context": cedar_context(action, {}, live, identity, now)}

    def raw() -> object:
        return cedarpy.is_authorized(request, bundle.policy_set, entities, schema=bundle.schema)

    def raw_without_schema() -> object:
        return cedarpy.is_authorized(request, bundle.policy_set, entities)

    def ours() -> object:
        return decide(bundle, identity=identity, action="read", resource=resource, context={},
                      live=live, now=now)

    # The same answer, or the timing means nothing.
    assert raw().allowed and raw_without_schema().allowed and ours().allowed
    ours_us, raw_us = compare(ours, raw)
    ours2_us, bare_us = compare(ours, raw_without_schema)
    name = f"decide() with explanation, example bundle ({len(bundle.policies)} policies)"
    return [Comparison(name, ours_us, raw_us,
                       "raw cedarpy.is_authorized, pre-parsed handles + Schema", "≤ 1.3 (issue 2)",
                       at_most=1.3),
            Comparison(name, ours2_us, bare_us,
                       "raw cedarpy.is_authorized, pre-parsed handles, no schema",
                       "≤ 1.2 (issue 8)", at_most=1.2),
            _typed_context(identity, live, now), *matrix()]


def matrix(sizes: tuple[int, ...] = embedded_cases.SIZES, rounds: int = 15) -> list[Comparison]:
    """decide() against raw cedarpy (with, without the schema) per size and resource form."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="pdp-bench-embedded-") as tmp:
        for n in sizes:
            case = embedded_cases.Case(Path(tmp), n)
            case.check()
            per_round = max(20, min(300, int(30_000 / n)))
            for static, ours, where in ((False, case.ours, "resource in the request"),
                                        (True, case.ours_static, "resource from entities.json")):
                for schema in (True, False):
                    def raw(case: embedded_cases.Case = case, schema: bool = schema,
                            static: bool = static) -> object:
                        return case.raw(schema=schema, static=static)

                    ours_us, raw_us = compare(ours, raw, rounds=rounds, per_round=per_round,
                                              warmup=per_round)
                    rows.append(Comparison(
                        f"{n:,} policies, {where}: decide()", ours_us, raw_us,
                        "raw cedarpy.is_authorized, pre-parsed handles"
                        + (" + Schema" if schema else ", no schema"), "≤ 1.1 (issue 16)",
                        at_most=1.1))
    return rows


TYPED_SCHEMA = """entity Host;
action connect appliesTo { principal: [Pdp::Workload], resource: [Host],
                           context: { client_ip: ipaddr } };
"""
TYPED_POLICIES = """@id("allow") @reason("Everyone may connect.")
permit (principal, action == Action::"connect", resource);
@id("blocked") @reason("A known bad address.")
forbid (principal, action == Action::"connect", resource)
  when { context.client_ip == ip("10.6.6.6") };
"""


def _typed_context(identity: VerifiedIdentity, live: object, now: object) -> Comparison:
    """decide() on a context the schema types as ``ipaddr``, against raw Cedar with it."""
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "schema.cedarschema").write_text(TYPED_SCHEMA)
        Path(directory, "policies.cedar").write_text(TYPED_POLICIES)
        bundle = load_bundle(directory, answer_memo_bytes=0)
    principal = principal_entity(identity)
    entities = bundle.entities.with_added_json_str(json.dumps([{
        "uid": principal.uid, "attrs": dict(principal.attrs), "parents": []}]))
    context = {"client_ip": "10.0.0.1"}
    request = {"principal": principal.uid, "action": {"type": "Action", "id": "connect"},
               "resource": {"type": "Host", "id": "db"}, "context": context}

    def raw() -> object:
        return cedarpy.is_authorized(request, bundle.policy_set, entities, schema=bundle.schema)

    def ours() -> object:
        return decide(bundle, identity=identity, action="connect",
                      resource=ResourceRef("Host", "db"), context=context,
                      live=live, now=now)  # type: ignore[arg-type]

    assert raw().allowed and ours().allowed
    ours_us, raw_us = compare(ours, raw)
    return Comparison("decide(), context with an ipaddr attribute (2 policies)", ours_us,
                      raw_us, "raw cedarpy.is_authorized, pre-parsed handles + Schema",
                      "— (issue 14: never skips the schema)")
