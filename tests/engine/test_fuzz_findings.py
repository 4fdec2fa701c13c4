"""Counterexamples the differential fuzzer (test_differential_fuzz.py) found, kept as tests.

Each test names what went wrong and is written against the public entry point,
``decide()``, with the smallest bundle that shows it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from context.model import LiveSnapshot
from pdp.authoring.policytests import case_identity
from pdp.decision.decide import decide
from pdp.decision.model import ResourceRef
from pdp.engine import load_bundle
from pdp.engine.grants import Grant
from tests.conftest import MONDAY_10

LIVE = LiveSnapshot(now=MONDAY_10, incident=False, risk_level=0, business_hours=True)
W0 = "spiffe://example.org/w0"

GRANT_SCHEMA = """
entity Doc;
action view appliesTo { principal: [Pdp::Workload], resource: [Doc], context: {} };
"""
GRANT_POLICIES = """
@id("p0") @reason("Everyone may view.")
permit (principal, action == Action::"view", resource);
@id("t-forbid") @reason("A task grant that takes viewing away.")
forbid (principal == ?principal, action == Action::"view", resource == ?resource);
@id("t-permit") @reason("A task grant that allows viewing.")
permit (principal == ?principal, action == Action::"view", resource == ?resource);
"""


@pytest.fixture
def grant_bundle(tmp_path):
    (tmp_path / "schema.cedarschema").write_text(GRANT_SCHEMA)
    (tmp_path / "policies.cedar").write_text(GRANT_POLICIES)
    return load_bundle(tmp_path)


def _grant(template: str) -> Grant:
    return Grant(id="g0", template=template, principal=W0, resource_type="Doc",
                 resource_id="d0", expires_at=MONDAY_10 + timedelta(minutes=5), task="t",
                 created_by=None, created_at=MONDAY_10)


def _view(bundle, grant: Grant, explain: bool | None = None):
    return decide(bundle, identity=case_identity({"principal": W0}, MONDAY_10), action="view",
                  resource=ResourceRef("Doc", "d0"), context={}, live=LIVE, now=MONDAY_10,
                  grants=[grant], explain=explain)


def test_a_grant_of_a_forbid_template_denies_instead_of_raising(grant_bundle) -> None:
    # Found by the fuzzer: explaining the deny looked the linked policy up among the
    # bundle's policies (KeyError 'grant:g0'), so decide() raised instead of deciding.
    decision = _view(grant_bundle, _grant("t-forbid"))
    assert (decision.decision, [r.policy for r in decision.reasons]) == ("deny", ["grant:g0"])
    assert decision.reasons[0].effect == "forbid"


def test_an_allow_by_a_grant_can_be_explained(grant_bundle) -> None:
    decision = _view(grant_bundle, _grant("t-permit"), explain=True)
    assert decision.decision == "allow"
    assert sorted(r.policy for r in decision.reasons) == ["grant:g0", "p0"]
