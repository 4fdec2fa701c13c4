"""Skipping the per-request schema check never lets an invalid request through."""

from __future__ import annotations

import pytest

from context.model import LiveSnapshot
from pdp.authoring.policytests import case_identity
from pdp.decision.decide import decide
from pdp.decision.model import ResourceRef
from pdp.engine import load_bundle
from pdp.engine.request_shapes import shape_of
from tests.conftest import MONDAY_10, POLICIES

LIVE = LiveSnapshot(now=MONDAY_10, incident=False, risk_level=0, business_hours=True)
ETL = case_identity({"principal": "spiffe://example.org/services/etl"}, MONDAY_10)


def _read(bundle, context):
    return decide(bundle, identity=ETL, action="read", resource=ResourceRef("App::Dataset",
                  "sales-daily"), context=context, live=LIVE, now=MONDAY_10)


@pytest.mark.parametrize("value", [
    {"type": "App::Dataset", "id": "x"}, {"__entity": {"type": "T", "id": "x"}},
    {"fn": "ip", "arg": "10.0.0.1"}, {"__extn": {"fn": "ip", "arg": "1.2.3.4"}},
    1.5, None, [1, None], {"a": {"type": "T", "id": "x"}}, 2**63,
])
def test_values_a_schema_could_read_differently_have_no_shape(value) -> None:
    assert shape_of({"k": value}) is None


def test_shapes_name_json_kinds_not_values() -> None:
    assert shape_of({"a": "x", "n": 1}) == shape_of({"n": 2, "a": "y"})
    assert shape_of({"a": "x"}) != shape_of({"a": 1}) != shape_of({"a": True})
    assert shape_of({"s": ["a"]}) != shape_of({"s": [1]})


def test_a_learned_shape_still_refuses_wrong_types_and_unknown_attributes() -> None:
    bundle = load_bundle(POLICIES)
    first = _read(bundle, {"purpose": "report"})
    assert first.decision == "allow"
    key = bundle.shapes.key(("App::Action", "read"), "Pdp::Workload", "App::Dataset",
                            {"purpose": "report"})
    assert bundle.shapes.known(key)  # learned: same answer with and without the schema
    assert _read(bundle, {"purpose": "another"}).decision == "allow"  # fast path
    assert _read(bundle, {"purpose": 7}).reason_codes == ("request.invalid",)
    assert _read(bundle, {"purpose": "x", "extra": 1}).reason_codes == ("request.invalid",)
    assert _read(bundle, {"purpose": {"type": "App::Dataset", "id": "x"}}).reason_codes == (
        "request.invalid",)


def test_an_invalid_first_request_teaches_nothing() -> None:
    bundle = load_bundle(POLICIES)
    assert _read(bundle, {"nonsense": "x"}).reason_codes == ("request.invalid",)
    key = bundle.shapes.key(("App::Action", "read"), "Pdp::Workload", "App::Dataset",
                            {"nonsense": "x"})
    assert not bundle.shapes.known(key)
    assert _read(bundle, {"nonsense": "y"}).reason_codes == ("request.invalid",)


def test_the_shape_includes_the_resource_type() -> None:
    bundle = load_bundle(POLICIES)
    assert _read(bundle, {}).decision == "allow"
    wrong = decide(bundle, identity=ETL, action="read", resource=ResourceRef("App::Api", "billing"),
                   context={}, live=LIVE, now=MONDAY_10)
    assert wrong.reason_codes == ("request.invalid",)


# A bundle whose schema gives strings a meaning (extension types) and entity ids a
# closed set (an enumerated type): a request of a known shape must still be read by it.
TYPED_SCHEMA = """
entity Host;
entity Color enum ["red", "green"];
type Net = { hops: Set<ipaddr>, limit: decimal };
action connect appliesTo {
  principal: [Pdp::Workload], resource: [Host, Color],
  context: { client_ip: ipaddr, net: Net, at: datetime, wait: duration, note: String },
};
"""
ALLOW_ALL = """
@id("allow-all") @reason("Everyone may connect.")
permit (principal, action, resource);
"""
BENIGN = {"client_ip": "10.0.0.1", "net": {"hops": ["10.0.0.2"], "limit": "1.0"},
          "at": "2026-01-05", "wait": "1m", "note": "fine"}


@pytest.fixture
def typed_bundle(tmp_path):
    """A fresh bundle of TYPED_SCHEMA with ALLOW_ALL and one forbid under ``condition``."""

    def make(condition: str = "false"):
        directory = tmp_path / str(len(list(tmp_path.iterdir())))
        directory.mkdir()
        (directory / "schema.cedarschema").write_text(TYPED_SCHEMA)
        (directory / "policies.cedar").write_text(ALLOW_ALL + (
            '@id("blocked") @reason("Blocked.")\n'
            'forbid (principal, action == Action::"connect", resource) '
            f'when {{ {condition} }};'))
        return load_bundle(directory)

    return make


def _connect(bundle, context, resource=ResourceRef("Host", "db")):
    return decide(bundle, identity=ETL, action="connect", resource=resource, context=context,
                  live=LIVE, now=MONDAY_10)


# Compared with ``==`` or ``contains``: without the schema a string never equals an
# extension value, so the forbid is simply false, no error gives the difference away.
@pytest.mark.parametrize(("condition", "change"), [
    ('context.client_ip == ip("10.6.6.6")', {"client_ip": "10.6.6.6"}),
    ('context.net.hops.contains(ip("10.6.6.6"))',
     {"net": {"hops": ["10.0.0.2", "10.6.6.6"], "limit": "1.0"}}),
    ('context.net.limit == decimal("9.5")', {"net": {"hops": [], "limit": "9.5"}}),
    ('context.at == datetime("2031-01-01")', {"at": "2031-01-01"}),
    ('context.wait == duration("2h")', {"wait": "2h"}),
], ids=["ipaddr", "ipaddr-in-set-in-record", "decimal-in-record", "datetime", "duration"])
def test_an_extension_typed_context_value_is_read_by_the_schema_after_warm_up(
        typed_bundle, condition, change) -> None:
    bad = {**BENIGN, **change}
    cold = _connect(typed_bundle(condition), bad)
    assert (cold.decision, [r.policy for r in cold.reasons]) == ("deny", ["blocked"])
    warm_bundle = typed_bundle(condition)
    assert _connect(warm_bundle, BENIGN).decision == "allow"
    assert _connect(warm_bundle, {**BENIGN, "net": {"hops": [], "limit": "1.0"}}).decision == "allow"
    warm = _connect(warm_bundle, bad)
    assert (warm.decision, [r.policy for r in warm.reasons]) == ("deny", ["blocked"])


def test_an_id_outside_an_enumerated_type_is_refused_after_warm_up(typed_bundle) -> None:
    blue = ResourceRef("Color", "blue")
    assert _connect(typed_bundle(), BENIGN, blue).reason_codes == ("request.invalid",)
    warm_bundle = typed_bundle()
    assert _connect(warm_bundle, BENIGN, ResourceRef("Color", "red")).decision == "allow"
    assert _connect(warm_bundle, BENIGN, blue).reason_codes == ("request.invalid",)
    assert _connect(warm_bundle, BENIGN, ResourceRef("Color", "green")).decision == "allow"


def test_a_shape_the_schema_reads_is_remembered_as_needing_it(typed_bundle) -> None:
    bundle = typed_bundle('context.client_ip == ip("10.6.6.6")')
    assert _connect(bundle, BENIGN).decision == "allow"
    key = bundle.shapes.key(("Action", "connect"), "Pdp::Workload", "Host", BENIGN)
    assert bundle.shapes.verdict(key) is False  # checked once, evaluated with the schema after
    assert _connect(bundle, {**BENIGN, "client_ip": "10.6.6.6"}).decision == "deny"
