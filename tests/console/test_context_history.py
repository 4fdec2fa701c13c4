"""Live-context history read back from the log: every store answers alike, incidents fold
into declared/ended windows, and a principal's risk steps (recorded or computed) add up."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdp.audit import context_history
from pdp.audit.chain.spool import SpoolingLog
from pdp.audit.context_history import PastIncident
from pdp.audit.records import normalize_ts
from pdp.audit.rollups import store_connection
from pdp.audit.store import DecisionStore
from pdp.console.live_view import (
    IncidentView,
    business_hours,
    incident_views,
    risk_history,
    risk_part,
    when,
)
from pdp.decision.record import admin_event_record
from tests.audit.conftest import open_store
from tests.audit.pgschema import postgres_schema, require_postgres

T0 = datetime(2026, 3, 2, 22, 0, tzinfo=UTC)
ETL = "spiffe://example.org/services/etl"
SRE = "spiffe://example.org/ops/sre-console"


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DecisionStore]:
    if request.param == "postgres":
        require_postgres()
        with postgres_schema("pdp_history") as dsn:
            log = open_store("postgres", tmp_path, dsn)
            yield log
            log.close()
        return
    log = open_store(request.param, tmp_path)
    yield log
    log.close()


def _event(store: DecisionStore, event: str, at: datetime, detail: dict[str, Any],
           principal: str | None = SRE) -> str:
    record = admin_event_record(event, principal=principal, authorized_by=None, detail=detail,
                                timestamp=normalize_ts(at),
                                event_id=f"ev-{event}-{at.timestamp():.0f}")
    store.append_sync(record)
    return str(record["decision_id"])


def _incident(iid: str, at: datetime, ends: datetime | None = None) -> dict[str, Any]:
    return {"type": "incident", "id": iid, "scope": "global", "level": 3,
            "level_name": "critical", "reason": f"{iid} reason", "set_at": normalize_ts(at),
            "set_by": SRE, "ends_at": normalize_ts(ends) if ends else None}


def test_incidents_fold_into_windows_alike_in_every_store(store: DecisionStore) -> None:
    night = _incident("night", T0)
    _event(store, "context.incident.set", T0, {"incident": night})
    store.append_sync({"decision_id": "d-1", "kind": "decision", "timestamp": normalize_ts(
        T0 + timedelta(minutes=5)), "principal": ETL, "decision": "deny", "reasons": [],
        "reason_codes": ["policy.forbid"]})  # a decision: not an event
    _event(store, "audit.query", T0 + timedelta(minutes=6), {"filters": {}})  # not context
    timed = _incident("timed", T0 + timedelta(hours=1), ends=T0 + timedelta(hours=2))
    _event(store, "context.incident.set", T0 + timedelta(hours=1), {"incident": timed})
    ended = _event(store, "context.incident.clear", T0 + timedelta(hours=3),
                   {"incidents": [night]}, principal="spiffe://example.org/ops/other")
    now = T0 + timedelta(hours=5)
    found = context_history.incidents(store, since=normalize_ts(T0 - timedelta(days=1)),
                                      until=normalize_ts(now))
    assert [i.id for i in found] == ["timed", "night"]
    timed_i, night_i = found
    assert night_i.ended_by == "spiffe://example.org/ops/other" and night_i.ended_event == ended
    assert night_i.window(now) == (normalize_ts(T0), normalize_ts(T0 + timedelta(hours=3)))
    assert timed_i.ended_at is None
    assert timed_i.window(now)[1] == normalize_ts(T0 + timedelta(hours=2))  # its own end
    assert timed_i.window(T0 + timedelta(hours=1, minutes=30))[1] == normalize_ts(
        T0 + timedelta(hours=1, minutes=30))  # still in force: until now
    events = context_history.admin_events(
        store, context_history.INCIDENT_EVENTS, since=normalize_ts(T0),
        until=normalize_ts(now), limit=2)
    assert [e["event"] for e in events] == ["context.incident.clear", "context.incident.set"]


def test_a_principals_risk_events_are_found_by_subject(store: DecisionStore) -> None:
    _event(store, "context.risk.auto", T0, {"change": "raised", "principal": ETL, "level": 2},
           principal=None)
    _event(store, "context.risk.auto", T0 + timedelta(seconds=1),
           {"change": "raised", "principal": "spiffe://example.org/other", "level": 3},
           principal=None)
    _event(store, "context.risk.set", T0 + timedelta(seconds=2),
           {"principal": ETL, "level": 1, "reason": "watch it"})
    _event(store, "context.risk.set", T0 + timedelta(seconds=3),
           {"principal": None, "level": 1, "reason": "global"})
    mine = context_history.admin_events(store, context_history.RISK_EVENTS,
                                        since=normalize_ts(T0), until=normalize_ts(
                                            T0 + timedelta(minutes=1)), subject=ETL)
    assert [(e["event"], e["detail"]["level"]) for e in mine] == [
        ("context.risk.set", 1), ("context.risk.auto", 2)]
    with pytest.raises(ValueError):
        context_history.admin_events(store, (), since=normalize_ts(T0),
                                     until=normalize_ts(T0))


def _raised(at: datetime, level: int, decay_s: float = 300) -> dict[str, Any]:
    return {"event": "context.risk.auto", "timestamp": normalize_ts(at), "decision_id": f"r{at}",
            "detail": {"change": "raised", "principal": ETL, "level": level,
                       "previous_level": 0, "summary": f"risk raised to {level}",
                       "signals": ["deny_burst"], "decisions": ["d1"], "decay_s": decay_s,
                       "decays": [{"level": level - k, "at": normalize_ts(
                           at + timedelta(seconds=k * decay_s))} for k in range(1, level + 1)]}}


def test_risk_history_computes_the_decay_steps_the_log_missed_and_no_more() -> None:
    recorded_decay = {"event": "context.risk.auto", "decision_id": "dec",
                      "timestamp": normalize_ts(T0 + timedelta(seconds=300)),
                      "detail": {"change": "decayed", "principal": ETL, "level": 1}}
    history = risk_history([_raised(T0, 2), recorded_decay],
                           T0 + timedelta(seconds=1000))
    steps = [(r.change, r.level, r.event is None) for r in reversed(history.rows)]
    # the recorded step to 1, then the step to 0 that no process was alive to record
    assert steps == [("raised", 2, False), ("decayed", 1, False), ("decayed", 0, True)]
    assert history.points[-1][1] == 0 and history.points[0][1:3] == [2, 0]
    assert history.points[0][3] == "behaviour raised: risk raised to 2"
    # A new raise before the old one decayed: the old one's later steps never happened.
    again = risk_history([_raised(T0, 3), _raised(T0 + timedelta(seconds=400), 2)],
                         T0 + timedelta(seconds=500))
    assert [(r.change, r.level) for r in reversed(again.rows)] == [
        ("raised", 3), ("decayed", 2), ("raised", 2)]
    # Steps not yet due are not history.
    early = risk_history([_raised(T0, 2)], T0 + timedelta(seconds=10))
    assert [(r.change, r.level) for r in early.rows] == [("raised", 2)]


def test_an_administrators_level_expires_in_the_history() -> None:
    set_ = {"event": "context.risk.set", "decision_id": "s", "principal": SRE,
            "timestamp": normalize_ts(T0), "detail": {
                "principal": ETL, "level": 3, "previous_level": 0, "reason": "suspicious",
                "expires_at": (T0 + timedelta(hours=1)).isoformat()}}
    history = risk_history([set_], T0 + timedelta(hours=2))
    assert [(r.change, r.level, r.by) for r in reversed(history.rows)] == [
        ("set", 3, SRE), ("expired", 0, None)]
    assert [p[2] for p in history.points] == [3, 0, 0]


def test_risk_parts_say_when_and_to_what_they_step_down() -> None:
    entry = {"level": 2, "reason": "", "set_at": normalize_ts(T0), "decay_s": 300,
             "automatic": True, "evidence": ["20 denies in 60 s"], "signals": ["deny_burst"],
             "decisions": ["d9"]}
    part = risk_part("behaviour", entry, T0 + timedelta(seconds=100))
    assert part.level_now == 2 and part.decisions == ("d9",)
    assert part.next_step == "steps down to medium at 2026-03-02 22:05 UTC (in 3 min)"
    manual = risk_part("administrator", {"level": 1, "reason": "watch", "set_at": normalize_ts(
        T0), "expires_at": normalize_ts(T0 + timedelta(hours=2))}, T0)
    assert manual.next_step == "ends at 2026-03-03 00:00 UTC (in 2 h 0 min), back to low"
    held = risk_part("administrator", {"level": 1, "reason": "r", "set_at": normalize_ts(T0)}, T0)
    assert held.next_step == "holds until an administrator changes it"
    assert business_hours({"open": False, "timezone": "UTC",
                           "next_change": "2026-03-03T08:00:00Z"}, T0) == (
        "Closed now (calendar UTC); opens at 2026-03-03 08:00 UTC (in 10 h 0 min).")
    assert when(T0 - timedelta(days=2, hours=1), T0).endswith("(2 d 1 h ago)")


EVENTS = ("context.incident.set", "context.incident.clear", "context.risk.auto",
          "context.risk.set", "audit.query")
SUBJECTS = (ETL, SRE, None)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(st.tuples(st.sampled_from(EVENTS), st.integers(0, 5000),
                                 st.sampled_from(SUBJECTS)), max_size=40),
       wanted=st.lists(st.sampled_from(EVENTS), min_size=1, max_size=3, unique=True),
       subject=st.sampled_from(SUBJECTS), window=st.tuples(st.integers(0, 5000),
                                                           st.integers(1, 5000)),
       limit=st.integers(1, 50))
def test_the_sql_selection_is_the_reference_selection(
        tmp_path_factory: pytest.TempPathFactory, events: list[tuple[str, int, str | None]],
        wanted: list[str], subject: str | None, window: tuple[int, int], limit: int) -> None:
    """SQLite's index-and-JSON query picks exactly what the Python reference picks."""
    sql = open_store("sqlite", tmp_path_factory.mktemp("h"))
    memory = open_store("memory", tmp_path_factory.mktemp("m"))
    try:
        for n, (event, second, who) in enumerate(events):
            at = T0 + timedelta(seconds=second, microseconds=n)  # distinct times: one order
            for store in (sql, memory):
                store.append_sync(admin_event_record(
                    event, principal=SRE, authorized_by=None, detail={"principal": who},
                    timestamp=normalize_ts(at), event_id=f"e{n}"))
        since = normalize_ts(T0 + timedelta(seconds=window[0]))
        until = normalize_ts(T0 + timedelta(seconds=window[0] + window[1]))
        picked = [[r["decision_id"] for r in context_history.admin_events(
            store, wanted, since=since, until=until, subject=subject, limit=limit)]
            for store in (sql, memory)]
        assert picked[0] == picked[1]
    finally:
        sql.close()
        memory.close()


def test_a_spooling_log_is_read_by_sql_through_the_store_it_wraps(tmp_path: Path) -> None:
    """With ``spool_path`` set the history is still one SQL query, not a scan in Python."""
    inner = open_store("sqlite", tmp_path)
    spooled = SpoolingLog(inner, tmp_path / "spool.jsonl")
    try:
        _event(spooled, "context.incident.set", T0, {"incident": _incident("spooled", T0)})
        with store_connection(spooled) as found:
            assert found is not None and found[1] == "sqlite"
        [incident] = context_history.incidents(spooled, since=normalize_ts(T0),
                                               until=normalize_ts(T0 + timedelta(hours=1)))
        assert incident.id == "spooled"
    finally:
        spooled.close()


def test_an_incident_scoped_to_principals_searches_their_denies_only() -> None:
    def view(scope: str) -> IncidentView:
        incident = PastIncident(id="i", scope=scope, level=2, level_name="major", reason="",
                                declared_at=normalize_ts(T0), declared_by=SRE,
                                ended_at=normalize_ts(T0 + timedelta(hours=1)))
        [made] = incident_views([incident], T0 + timedelta(hours=2))
        return made

    assert parse_qs(view("global").denied) == {
        "decision": ["deny"], "since": [normalize_ts(T0)],
        "until": [normalize_ts(T0 + timedelta(hours=1))]}
    assert parse_qs(view("spiffe_prefix:spiffe://example.org/agents").denied)[
        "principal_prefix"] == ["spiffe://example.org/agents"]
    assert parse_qs(view("trust_domain:example.org").denied)["principal_prefix"] == [
        "spiffe://example.org/"]
    assert "principal_prefix" not in parse_qs(view("resource_tag:pii").denied)
    assert view("global").state == "ended"
