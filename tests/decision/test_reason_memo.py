"""The ``Reason`` of a determining policy, built once per bundle (``Bundle.reasons``).

A decision names each policy that determined it with the policy's ``@reason`` and
``@advice``; ``pdp.decision.outcomes`` builds that ``Reason`` once per policy and
bundle. These tests attack the memo: a warm answer must equal a cold one, a bundle
loaded again with a new ``@reason`` must say the new text (and the old bundle the
old one), and a task grant, whose reason names the grant, must never be answered
from it, before or after the template's own policies were.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from context.model import LiveSnapshot
from pdp.decision.decide import decide
from pdp.decision.model import Decision, ResourceRef
from pdp.engine import load_bundle
from pdp.engine.bundle import Bundle
from pdp.engine.grants import Grant
from pdp.identity.model import VerifiedIdentity
from tests.conftest import MONDAY_10

SCHEMA = """namespace App {
  entity Doc;
  action "read" appliesTo { principal: [Pdp::Workload], resource: [Doc], context: {} };
}
"""
POLICIES = """@id("all") @reason("{all}") @advice("Ask the owners.")
permit (principal, action == App::Action::"read", resource == App::Doc::"d1");
@id("w") @reason("The workload reads its own document.")
permit (principal == Pdp::Workload::"spiffe://example.org/w", action, resource);
@id("t.read") @reason("A task grant to read one document.")
permit (principal == ?principal, action == App::Action::"read", resource == ?resource);
"""
LIVE = LiveSnapshot(now=MONDAY_10, incident=False, risk_level=0, business_hours=True)
IDENTITY = VerifiedIdentity(principal_id="spiffe://example.org/w", kind="jwt-svid",
                            issuer="spiffe://example.org", trust_domain="example.org",
                            path="/w", issued_at=MONDAY_10 - timedelta(seconds=5),
                            expires_at=MONDAY_10 + timedelta(minutes=5))


def _bundle(directory: Path, all_reason: str = "Everyone reads d1.") -> Bundle:
    directory.mkdir(exist_ok=True)
    (directory / "schema.cedarschema").write_text(SCHEMA)
    (directory / "policies.cedar").write_text(POLICIES.replace("{all}", all_reason))
    (directory / "entities.json").write_text("[]")
    return load_bundle(directory)


def _read(bundle: Bundle, doc: str, grants: tuple[Grant, ...] = ()) -> Decision:
    return decide(bundle, identity=IDENTITY, action="read", resource=ResourceRef("App::Doc", doc),
                  context={}, live=LIVE, now=MONDAY_10, grants=grants)


def _grant(doc: str) -> Grant:
    return Grant(id="g1", template="t.read", principal=IDENTITY.principal_id,
                 resource_type="App::Doc", resource_id=doc,
                 expires_at=MONDAY_10 + timedelta(hours=1), task="triage", created_by=None,
                 created_at=datetime(2026, 1, 5, 9, tzinfo=MONDAY_10.tzinfo))


def test_a_warm_reason_is_the_cold_one_built_once(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "b")
    cold = _read(bundle, "d1")
    warm = _read(bundle, "d1")
    assert cold.allowed and warm.allowed
    assert sorted(r.policy for r in cold.reasons) == ["all", "w"]
    assert sorted(warm.reasons, key=lambda r: r.policy) == sorted(cold.reasons,
                                                                  key=lambda r: r.policy)
    by_id = {r.policy: r for r in cold.reasons}
    assert by_id["all"].message == "Everyone reads d1."
    assert by_id["all"].advice == "Ask the owners."
    # Built once: the warm decision holds the very objects the cold one built.
    assert all(r is by_id[r.policy] for r in warm.reasons)
    assert set(bundle.reasons) == {"all", "w"}


def test_a_bundle_loaded_again_says_its_own_reason(tmp_path: Path) -> None:
    old = _bundle(tmp_path / "b")
    assert {r.message for r in _read(old, "d1").reasons} >= {"Everyone reads d1."}
    new = _bundle(tmp_path / "b", all_reason="Only on Mondays, d1 is open.")
    assert {r.message for r in _read(new, "d1").reasons} >= {"Only on Mondays, d1 is open."}
    # And the old bundle (a replay of an older decision) still says what it said.
    messages = {r.message for r in _read(old, "d1").reasons}
    assert "Everyone reads d1." in messages
    assert "Only on Mondays, d1 is open." not in messages


def test_a_task_grant_is_named_as_a_grant_whatever_was_memoized_before(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "b")
    for _ in range(2):  # cold, then with every static reason memoized
        static = _read(bundle, "d1")
        assert all("task grant" not in r.message for r in static.reasons)
        granted = _read(bundle, "d2", grants=(_grant("d2"),))
        assert granted.allowed
        by_id = {r.policy: r for r in granted.reasons}
        assert "task grant g1 for task 'triage'" in by_id[_grant("d2").link_id].message
    # Grant reasons (which name the grant and its expiry) are never kept.
    assert not any(pid.startswith(_grant("d2").link_id) for pid in bundle.reasons)
