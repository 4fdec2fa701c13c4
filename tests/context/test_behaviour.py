"""Behaviour signals: thresholds over sliding windows raise a principal's risk."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from context.behaviour import (
    EXPIRED,
    REVOKED,
    BehaviourMonitor,
    BehaviourRules,
    Observation,
    RiskRaise,
    observation_of,
)
from context.state import RiskEntry
from tests.conftest import MONDAY_10

AGENT = "spiffe://example.org/agents/reporter"


class Recorder:
    """Applies raises the way the live context does: the level holds until replaced."""

    def __init__(self) -> None:
        self.raises: list[RiskRaise] = []

    def level(self, principal: str, at: datetime) -> int:
        mine = [r for r in self.raises if r.principal_id == principal]
        return mine[-1].entry().level_at(at) if mine else 0

    def monitor(self, **rules: Any) -> BehaviourMonitor:
        return BehaviourMonitor(BehaviourRules(**rules), current_level=self.level,
                                on_raise=self.raises.append)


def _obs(at: datetime, **kw: Any) -> Observation:
    return Observation(principal_id=kw.pop("principal", AGENT), at=at, **kw)


def test_a_burst_of_denies_raises_risk_once_with_the_evidence() -> None:
    rec = Recorder()
    monitor = rec.monitor(deny_burst=20, window_s=60)
    for i in range(25):
        monitor.observe(_obs(MONDAY_10 + timedelta(seconds=i), counted_deny=True))
    assert len(rec.raises) == 1
    raised = rec.raises[0]
    assert raised.level == 2 and raised.signals == ("deny_burst",)
    assert raised.summary == "risk raised to high: 20 denies in 60 s"
    assert raised.detail()["decays"][0]["level"] == 1


def test_a_raise_names_the_decisions_that_fired_it_and_keeps_them_in_its_entry() -> None:
    rec = Recorder()
    monitor = rec.monitor(deny_burst=3, window_s=10, new_source_min_history=3)
    monitor.observe(_obs(MONDAY_10, counted_deny=True, decision_id="old"))
    for i in range(3):  # "old" left the window: the burst is d0..d2, newest first
        monitor.observe(_obs(MONDAY_10 + timedelta(seconds=20 + i), counted_deny=True,
                             decision_id=f"d{i}", source_address="10.0.0.1"))
    raised = rec.raises[0]
    assert raised.decisions == ("d2", "d1", "d0")
    assert raised.detail()["decisions"] == ["d2", "d1", "d0"]
    assert raised.entry().decisions == ("d2", "d1", "d0")
    assert RiskEntry.from_dict(raised.entry().as_dict()).decisions == ("d2", "d1", "d0")
    # A first-seen source (level 1 under high) would not raise; at level 0 it names itself.
    rec2 = Recorder()
    m2 = rec2.monitor(new_source_min_history=2, deny_burst=100)
    for i in range(2):
        m2.observe(_obs(MONDAY_10 + timedelta(seconds=i), source_address="10.0.0.1"))
    m2.observe(_obs(MONDAY_10 + timedelta(seconds=3), source_address="10.9.9.9",
                    decision_id="from-new-source"))
    assert rec2.raises[0].decisions == ("from-new-source",)


def test_denies_spread_beyond_the_window_do_not_count_together() -> None:
    rec = Recorder()
    monitor = rec.monitor(deny_burst=5, window_s=10)
    for i in range(20):
        monitor.observe(_obs(MONDAY_10 + timedelta(seconds=3 * i), counted_deny=True))
    assert rec.raises == []


def test_a_continuing_burst_raises_again_only_after_the_level_decayed() -> None:
    rec = Recorder()
    monitor = rec.monitor(deny_burst=3, window_s=60, decay_s=30)
    for i in range(70):
        monitor.observe(_obs(MONDAY_10 + timedelta(seconds=i), counted_deny=True))
    # Raised at t=2 (level 2), decays to 1 at t=32 -> raised again; and again at t=62.
    assert [r.at - MONDAY_10 for r in rec.raises] == [timedelta(seconds=s) for s in (2, 32, 62)]
    assert [r.previous_level for r in rec.raises] == [0, 1, 1]


def test_a_rate_far_above_the_principals_own_baseline_raises_risk() -> None:
    rec = Recorder()
    monitor = rec.monitor(window_s=60, rate_factor=5, rate_min_requests=100,
                          baseline_warmup_s=600, baseline_s=3600)
    t = MONDAY_10
    for _ in range(120):  # 20 minutes at one request per 10 s: the baseline
        monitor.observe(_obs(t))
        t += timedelta(seconds=10)
    assert rec.raises == []
    for i in range(150):  # then 150 requests in 30 s
        monitor.observe(_obs(t + timedelta(seconds=i / 5)))
    assert [r.signals for r in rec.raises] == [("request_rate",)]
    assert "x its baseline" in rec.raises[0].evidence[0]


def test_a_new_principal_has_no_baseline_to_exceed() -> None:
    rec = Recorder()
    monitor = rec.monitor(rate_min_requests=10)
    for i in range(500):
        monitor.observe(_obs(MONDAY_10 + timedelta(seconds=i / 100)))
    assert rec.raises == []


def test_a_first_seen_source_address_counts_only_after_some_history() -> None:
    rec = Recorder()
    monitor = rec.monitor(new_source_min_history=10)
    for i in range(10):
        monitor.observe(_obs(MONDAY_10 + timedelta(seconds=i), source_address="10.0.0.1",
                             pep="gateway-1"))
    assert rec.raises == []
    monitor.observe(_obs(MONDAY_10 + timedelta(seconds=11), source_address="192.0.2.66",
                         pep="gateway-1"))
    assert rec.raises[0].evidence == ("first-seen source address 192.0.2.66",)
    assert rec.raises[0].level == 1


def test_use_of_a_revoked_credential_raises_risk_to_critical_at_once() -> None:
    rec = Recorder()
    monitor = rec.monitor()
    monitor.observe(_obs(MONDAY_10, credential_problem=EXPIRED))
    assert rec.raises == []  # five expired uses are needed by default
    monitor.observe(_obs(MONDAY_10, credential_problem=REVOKED))
    assert rec.raises[0].level == 3 and rec.raises[0].signals == ("revoked_credential",)


def test_a_disabled_monitor_watches_nothing() -> None:
    rec = Recorder()
    monitor = rec.monitor(enabled=False, deny_burst=1)
    monitor.observe(_obs(MONDAY_10, counted_deny=True))
    assert rec.raises == []


@dataclass
class _Decision:
    decision: str
    reason_codes: tuple[str, ...]
    identity: Any = None
    timestamp: datetime = MONDAY_10
    proven_principal: str | None = None


@dataclass
class _Identity:
    principal_id: str


@dataclass
class _Request:
    credential: Any = None
    context: dict[str, Any] = field(default_factory=dict)
    pep: str | None = None


@dataclass
class _Token:
    token: str


def _jwt(claims: dict[str, Any]) -> str:
    def part(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'ES256'})}.{part(claims)}.c2ln"


def test_only_denies_for_lack_of_a_permit_count_not_guard_forbids() -> None:
    rules = BehaviourRules()
    who = _Identity(AGENT)
    no_permit = observation_of(_Decision("deny", ("policy.no_permit",), who), _Request(), rules)
    forbid = observation_of(_Decision("deny", ("policy.forbid",), who), _Request(), rules)
    assert no_permit is not None and no_permit.counted_deny
    assert forbid is not None and not forbid.counted_deny


def test_the_source_address_comes_from_the_peps_context() -> None:
    obs = observation_of(_Decision("allow", ("policy.permit",), _Identity(AGENT)),
                         _Request(context={"source_ip": "10.1.2.3"}, pep="envoy"), BehaviourRules())
    assert obs is not None and obs.source_address == "10.1.2.3" and obs.pep == "envoy"


def test_a_revoked_or_expired_credential_is_attributed_only_to_the_principal_it_was_proven_to_be() -> None:
    request = _Request(credential=_Token(_jwt({"sub": AGENT})))
    revoked = observation_of(_Decision("deny", ("identity.revoked",), proven_principal=AGENT),
                             request, BehaviourRules())
    assert revoked is not None and revoked.principal_id == AGENT
    assert revoked.credential_problem == REVOKED
    # What the credential merely claims names nobody: an unverified `sub` could frame anyone.
    for code in ("identity.expired", "identity.revoked", "identity.bad_signature"):
        assert observation_of(_Decision("deny", (code,)), request, BehaviourRules()) is None
