"""The live-context model: scopes, risk decay, snapshots, freshness, valid_until."""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from context.calendar import BusinessCalendar
from context.durable import DurableContextStore, DurableState
from context.live import DegradedDefaults, Freshness, LiveContext, _PlainSources
from context.memory import InMemoryContext
from context.model import LiveSnapshot, ValueSource
from context.state import (
    ContextChange,
    ContextState,
    Incident,
    RequestFacts,
    RiskEntry,
    Scope,
    entry_from_json,
    entry_to_json,
    incident_key,
    parse_level,
)
from context.store import InMemoryStore, StoreView
from pdp.audit.memory.admin_state import MemoryAdminState
from tests.conftest import MONDAY_10

AGENT = "spiffe://example.org/agents/reporter"
ETL = "spiffe://example.org/services/etl"


@pytest.mark.parametrize(("scope", "facts", "applies"), [
    ("global", RequestFacts(), True),
    ("trust_domain:example.org", RequestFacts(ETL), True),
    ("trust_domain:example.org", RequestFacts("spiffe://partner.example/x"), False),
    ("trust_domain:example.org", RequestFacts("client-1"), False),
    ("spiffe_prefix:spiffe://example.org/agents", RequestFacts(AGENT), True),
    ("spiffe_prefix:spiffe://example.org/agents/", RequestFacts(AGENT), True),
    ("spiffe_prefix:spiffe://example.org/agents", RequestFacts("spiffe://example.org/agents-old/x"), False),
    ("resource_type:App::Dataset", RequestFacts(ETL, "App::Dataset"), True),
    ("resource_type:App::Dataset", RequestFacts(ETL, "App::Api"), False),
    ("resource_tag:pii", RequestFacts(ETL, "App::Dataset", frozenset({"pii", "eu"})), True),
    ("resource_tag:pii", RequestFacts(ETL, "App::Dataset", frozenset({"finance"})), False),
])
def test_incident_scopes_match_principal_or_resource(scope: str, facts: RequestFacts,
                                                     applies: bool) -> None:
    assert Scope.parse(scope).applies(facts) is applies


@pytest.mark.parametrize("bad", ["regional:eu", "spiffe_prefix:example.org/agents",
                                 "trust_domain:spiffe://example.org", "resource_tag:", "global:x"])
def test_malformed_scopes_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        Scope.parse(bad)


def test_levels_are_numbers_or_names() -> None:
    assert parse_level("high") == 2 and parse_level(3) == 3 and parse_level(" 0 ") == 0
    with pytest.raises(ValueError):
        parse_level(4)


def test_an_automatic_raise_steps_down_one_level_per_decay_period() -> None:
    entry = RiskEntry(level=3, reason="", set_at=MONDAY_10, decay_s=60, automatic=True)
    assert [entry.level_at(MONDAY_10 + timedelta(seconds=s)) for s in (0, 59, 60, 125, 180)] \
        == [3, 3, 2, 1, 0]
    assert entry.next_change(MONDAY_10 + timedelta(seconds=61)) == MONDAY_10 + timedelta(seconds=120)
    assert entry.next_change(MONDAY_10 + timedelta(seconds=200)) is None
    assert entry.gone_at() == MONDAY_10 + timedelta(seconds=180)


def test_a_risk_entry_expires() -> None:
    entry = RiskEntry(level=2, reason="", set_at=MONDAY_10, expires_at=MONDAY_10 + timedelta(hours=1))
    assert entry.level_at(MONDAY_10 + timedelta(minutes=59)) == 2
    assert entry.level_at(MONDAY_10 + timedelta(hours=1)) == 0


def test_entries_round_trip_through_json() -> None:
    incident = Incident(id="INC-1", scope=Scope.parse("resource_tag:pii"), level=3, reason="leak",
                        set_at=MONDAY_10, set_by="sre", ends_at=MONDAY_10 + timedelta(hours=1))
    risk = RiskEntry(level=2, reason="r", set_at=MONDAY_10, decay_s=300, automatic=True,
                     evidence=("40 denies in 60 s",), signals=("deny_burst",))
    assert entry_from_json(entry_to_json(incident)) == incident
    assert entry_from_json(entry_to_json(risk)) == risk


def test_business_hours_next_change_is_the_next_boundary() -> None:
    calendar = BusinessCalendar(holidays=frozenset({date(2026, 1, 6)}))
    assert calendar.next_change(MONDAY_10) == datetime(2026, 1, 5, 17, tzinfo=UTC)
    # Monday 18:00 -> Tuesday is a holiday -> Wednesday 09:00.
    assert calendar.next_change(datetime(2026, 1, 5, 18, tzinfo=UTC)) == datetime(2026, 1, 7, 9, tzinfo=UTC)
    berlin = BusinessCalendar(timezone="Europe/Berlin", start=BusinessCalendar().start)
    assert berlin.next_change(datetime(2026, 1, 5, 6, tzinfo=UTC)) == datetime(2026, 1, 5, 8, tzinfo=UTC)


def _live(**kw) -> LiveContext:
    return LiveContext(store=InMemoryStore(), calendar=BusinessCalendar(), **kw)


def test_only_incidents_whose_scope_matches_reach_the_snapshot() -> None:
    live = _live()
    live.declare_incident(scope=Scope.parse("resource_tag:pii"), level=3, reason="leak",
                          now=MONDAY_10, set_by="spiffe://example.org/ops/sre-console")
    live.declare_incident(scope=Scope.parse("spiffe_prefix:spiffe://example.org/agents"),
                          level=1, reason="agents", now=MONDAY_10)
    pii = live.snapshot(ETL, MONDAY_10, resource_type="App::Dataset", resource_tags={"pii"})
    assert pii.incident and pii.incident_level == 3 and [i.reason for i in pii.incidents] == ["leak"]
    assert pii.sources["incident"].set_by == "spiffe://example.org/ops/sre-console"
    plain = live.snapshot(ETL, MONDAY_10, resource_type="App::Dataset")
    assert not plain.incident and plain.incident_level == 0
    agent = live.snapshot(AGENT, MONDAY_10, resource_type="App::Dataset", resource_tags={"pii"})
    assert agent.incident_level == 3 and len(agent.incidents) == 2


def test_risk_level_is_the_higher_of_global_and_the_principals_own() -> None:
    live = _live()
    live.set_risk(level=1, reason="campaign", now=MONDAY_10)
    live.set_risk(level=3, reason="investigating", now=MONDAY_10, principal=AGENT)
    agent, etl = live.snapshot(AGENT, MONDAY_10), live.snapshot(ETL, MONDAY_10)
    assert (agent.global_risk_level, agent.principal_risk_level, agent.risk_level) == (1, 3, 3)
    assert (etl.global_risk_level, etl.principal_risk_level, etl.risk_level) == (1, 0, 1)
    assert agent.to_cedar()["principal_risk_level"] == 3


def test_every_change_moves_the_version_and_valid_until_stops_at_the_next_change() -> None:
    live = _live()
    before = live.snapshot(ETL, MONDAY_10).version
    _, version = live.declare_incident(scope=Scope(), level=2, reason="x", now=MONDAY_10,
                                       ends_at=MONDAY_10 + timedelta(seconds=90))
    snap = live.snapshot(ETL, MONDAY_10)
    assert snap.version == version != before
    assert snap.valid_until == MONDAY_10 + timedelta(seconds=90)
    assert not live.snapshot(ETL, MONDAY_10 + timedelta(seconds=90)).incident  # ended by itself


def test_setting_a_principals_risk_replaces_its_automatic_raise() -> None:
    live = _live()
    live.raise_automatically(AGENT, RiskEntry(level=2, reason="r", set_at=MONDAY_10, decay_s=300,
                                              automatic=True, evidence=("25 denies in 60 s",),
                                              signals=("deny_burst",)))
    raised = live.snapshot(AGENT, MONDAY_10)
    assert raised.principal_risk_level == 2 and raised.signals == ("deny_burst",)
    assert raised.notes == ("risk raised to high: 25 denies in 60 s",)
    assert raised.sources["principal_risk_level"].source == "behaviour"
    live.set_risk(level=0, reason="false alarm", now=MONDAY_10, principal=AGENT)
    cleared = live.snapshot(AGENT, MONDAY_10)
    assert cleared.principal_risk_level == 0 and not cleared.notes and not cleared.signals


class _StaleStore(InMemoryStore):
    """An in-memory store that pretends its copy was last confirmed ``age_s`` ago."""

    def __init__(self, age_s: float | None, reachable: bool = False) -> None:
        super().__init__()
        self.age_s, self.reachable = age_s, reachable

    def view(self) -> StoreView:
        return StoreView(state=super().view().state, source="redis://test", age_s=self.age_s,
                         reachable=self.reachable, error="ConnectionError: refused", shared=True)


def test_stale_values_give_way_to_conservative_defaults_and_say_so() -> None:
    store = _StaleStore(age_s=5.0)
    live = LiveContext(store=store, calendar=BusinessCalendar(), freshness=Freshness(30, 30))
    fresh = live.snapshot(ETL, MONDAY_10)
    assert not fresh.degraded and fresh.risk_level == 0
    assert fresh.valid_until == MONDAY_10 + timedelta(seconds=25)  # when it would go stale
    store.age_s = 31.0
    stale = live.snapshot(ETL, MONDAY_10)
    assert stale.degraded == ("incident", "global_risk_level", "principal_risk_level")
    assert stale.risk_level == 2 and stale.to_cedar()["degraded"] is True
    assert stale.version.endswith("~degraded") and "degraded" in stale.notes[-1]
    assert stale.valid_until == MONDAY_10 + timedelta(seconds=5)
    assert live.health()["status"] == "degraded"


def test_stale_values_are_never_lowered_below_the_last_known() -> None:
    store = _StaleStore(age_s=0.0, reachable=True)
    live = LiveContext(store=store, calendar=BusinessCalendar(),
                       degraded=DegradedDefaults(incident_level=1, global_risk_level=2))
    live.declare_incident(scope=Scope(), level=3, reason="known", now=MONDAY_10)
    live.set_risk(level=3, reason="known", now=MONDAY_10)
    store.age_s = None  # never confirmed since: a stale copy
    snap = live.snapshot(ETL, MONDAY_10)
    assert snap.incident_level == 3 and snap.global_risk_level == 3
    assert {i.source for i in snap.incidents} == {"admin", "default"}


def test_configured_incident_and_risk_hold_until_an_administrator_sets_something() -> None:
    live = InMemoryContext(calendar=BusinessCalendar(), incident=True, risk_level=1)
    snap = live.snapshot(ETL, MONDAY_10)
    assert snap.incident and snap.risk_level == 1 and snap.sources["incident"].source == "config"
    live.set_risk(level=0, reason="calm", now=MONDAY_10)
    assert live.snapshot(ETL, MONDAY_10).risk_level == 0


def test_a_snapshot_round_trips_through_its_record_form() -> None:
    live = _live()
    live.declare_incident(scope=Scope.parse("resource_tag:pii"), level=2, reason="leak",
                          now=MONDAY_10, ends_at=MONDAY_10 + timedelta(hours=1))
    live.raise_automatically(AGENT, RiskEntry(level=2, reason="r", set_at=MONDAY_10, decay_s=60,
                                              automatic=True, evidence=("e",), signals=("s",)))
    snap = live.snapshot(AGENT, MONDAY_10, resource_type="App::Dataset", resource_tags={"pii"})
    again = LiveSnapshot.from_dict(snap.as_dict())
    assert again.to_cedar() == snap.to_cedar()
    assert again.as_dict() == snap.as_dict()


def test_overrides_keep_related_values_consistent() -> None:
    base = _live().snapshot(ETL, MONDAY_10)
    assert base.with_overrides(incident=True).incident_level == 1
    assert base.with_overrides(incident_level=3).incident is True
    assert base.with_overrides(principal_risk_level=2).risk_level == 2
    raised = base.with_overrides(principal_risk_level=3)
    assert raised.with_overrides(risk_level=1).principal_risk_level == 1
    assert base.with_overrides(degraded=True).to_cedar()["degraded"] is True


def test_a_change_prunes_entries_that_no_longer_matter() -> None:
    store = InMemoryStore()
    old = Incident(id="old", scope=Scope(), level=1, reason="", set_at=MONDAY_10,
                   ends_at=MONDAY_10 + timedelta(minutes=1))
    store.apply(ContextChange(puts={incident_key("old"): old}))
    live = LiveContext(store=store, calendar=BusinessCalendar())
    live.set_risk(level=1, reason="", now=MONDAY_10 + timedelta(minutes=2))
    assert incident_key("old") not in store.view().state.entries
    assert isinstance(store.view().state, ContextState)


@pytest.mark.parametrize("set_at", [None, ""])
def test_a_stored_entry_without_its_set_at_time_is_malformed(set_at) -> None:
    # Every entry is ordered and aged by set_at: one without it is refused when read,
    # never carried on as None.
    with pytest.raises(ValueError, match="no set_at"):
        Incident.from_dict({"id": "i-1", "scope": "global", "level": 1, "set_at": set_at})
    with pytest.raises(ValueError, match="no set_at"):
        RiskEntry.from_dict({"level": 2, "set_at": set_at})


def _rendered_afresh(snap: LiveSnapshot) -> bytes:
    """``snap`` as JSON with every source built and rendered anew (no memo involved)."""
    fresh = replace(snap, sources={k: ValueSource(v.source, v.set_at, v.set_by, v.expires_at,
                                                  v.age_s, v.max_age_s)
                                   for k, v in snap.sources.items()})
    return orjson.dumps(fresh.as_dict())


@settings(max_examples=60, deadline=None)
@given(ages=st.lists(st.one_of(st.none(), st.integers(0, 40),
                               st.floats(0, 40, allow_nan=False)), min_size=1, max_size=8))
def test_shared_sources_render_as_a_fresh_snapshot_whatever_the_ages_seen(ages) -> None:
    """The provider hands one ``ValueSource`` per distinct value to every snapshot, each
    rendered once: whatever sequence of ages (int or float: ``0`` and ``0.0`` render
    differently) and staleness a store reports, a snapshot renders as it would with
    sources of its own."""
    store = _StaleStore(age_s=None, reachable=True)
    live = LiveContext(store=store, calendar=BusinessCalendar(), freshness=Freshness(30, 30))
    for age in ages:
        store.age_s = age
        snap = live.snapshot(ETL, MONDAY_10)
        assert orjson.dumps(snap.as_dict()) == _rendered_afresh(snap)
        assert snap.sources["incident"].age_s == age
        assert type(snap.sources["incident"].age_s) is type(age)


def test_a_sources_json_is_the_callers_own_copy() -> None:
    """Changing one decision's rendered sources changes nothing the next decision shows."""
    live = _live()
    first = live.snapshot(ETL, MONDAY_10).as_dict()
    assert first["sources"]["global_risk_level"]["source"] == "config"
    first["sources"]["global_risk_level"]["source"] = "tampered"
    first["sources"]["business_hours"].clear()
    second = live.snapshot(ETL, MONDAY_10)
    assert second.as_dict()["sources"]["global_risk_level"]["source"] == "config"
    assert orjson.dumps(second.as_dict()) == _rendered_afresh(second)


def test_plain_sources_are_shared_while_they_hold_and_kept_bounded() -> None:
    plain = _PlainSources()
    assert plain("memory", 0.0, 30.0) is plain("memory", 0.0, 30.0)
    assert plain("memory", 0, 30.0) is not plain("memory", 0.0, 30.0)  # "0" and "0.0"
    assert plain("memory", 0, 30.0).as_dict()["age_s"] == 0
    assert orjson.dumps(plain("memory", 0, 30.0).as_dict()) != orjson.dumps(
        plain("memory", 0.0, 30.0).as_dict())
    for n in range(3 * _PlainSources.MAX):  # a shared store: a new age at every sync
        assert plain("redis://r", n / 7, 30.0).age_s == n / 7
    assert len(plain._made) <= _PlainSources.MAX


def test_the_durable_view_is_the_inner_view_with_the_merged_state() -> None:
    """``DurableContextStore.view`` keeps every field of the inner store's view but the
    state (built field by field: a field added to ``StoreView`` must be passed on)."""
    inner = _StaleStore(age_s=12.5, reachable=False)
    durable = DurableContextStore(inner, DurableState(MemoryAdminState()))
    try:
        view = durable.view()
        expected = replace(inner.view(), state=view.state)
        assert all(getattr(view, f.name) == getattr(expected, f.name)
                   for f in dataclass_fields(StoreView))
        assert view.error == "ConnectionError: refused" and view.shared
    finally:
        durable.close()
