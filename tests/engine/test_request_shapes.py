"""Skipping the per-request schema check never lets an invalid request through."""

from __future__ import annotations

import pytest

from context.model import LiveSnapshot
from pdp.decision.decide import decide
from pdp.decision.model import ResourceRef
from pdp.engine import load_bundle
from pdp.engine.request_shapes import shape_of
from pdp.policytests import case_identity
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
