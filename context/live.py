"""``LiveContext``: the live-context provider every decision asks.

It composes one ``LiveSnapshot`` per decision from a store's local copy
(incidents, risk levels), the business calendar and the clock's ``now``:

1. **Incidents** whose scope matches this request (trust domain or SPIFFE
   prefix of the principal, type or tag of the resource) and that have not
   ended; ``incident_level`` is the highest of them.
2. **Risk**: the global level, and the principal's own level (set by an
   administrator, or raised automatically by the behaviour monitor and
   decaying); ``risk_level`` is the higher of the two.
3. **Freshness**: a value older than its maximum age (the store could not
   confirm it, e.g. Redis is down) is *stale*: the configured conservative
   default is used instead (never lower than the last known value), the value
   is listed in ``degraded`` and the decision's explanation says so.
4. **valid_until**: the next scheduled change (incident end, risk expiry or
   decay step, business-hours boundary, the moment data would go stale), so a
   PEP never caches an answer across it.

Reading is lock-free and I/O-free; the admin operations write through the
store (Redis: a network round trip, run them off the event loop).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, Unpack

from context.calendar import BusinessCalendar
from context.model import LiveSnapshot, ValueSource
from context.state import (
    GLOBAL_RISK_KEY,
    INCIDENT_LEVELS,
    ContextChange,
    ContextState,
    Incident,
    RequestFacts,
    RiskEntry,
    Scope,
    auto_risk_key,
    incident_key,
    principal_risk_key,
    risk_name,
)
from context.store import ContextStore, StoreView

_INCIDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class _Age(TypedDict):
    """How fresh one lookup's store view is: every ``ValueSource`` of that lookup carries it."""

    age_s: float | None
    max_age_s: float


@dataclass(frozen=True, slots=True)
class Freshness:
    """How old (since last confirmed with the store) each kind of value may be."""

    incident_max_age_s: float = 30.0
    risk_max_age_s: float = 30.0


@dataclass(frozen=True, slots=True)
class DegradedDefaults:
    """What a stale or unreachable value is replaced by (never lower than the last known).

    The default global risk is *high*, so elevated actions are refused while
    the PDP cannot know better; a policy can also test ``context.live.degraded``.
    """

    incident_level: int = 0
    global_risk_level: int = 2
    principal_risk_level: int = 0
    ttl_s: float = 5.0            # how long a PEP may cache a decision made on degraded context


@dataclass(frozen=True, slots=True)
class ConfiguredValues:
    """The ``[live]`` configuration: in force while no administrator has set anything."""

    incident: bool = False
    risk_level: int = 0


class LiveContext:
    """Live context from ``store`` and ``calendar`` (implements ``LiveContextProvider``).

    Example::

        live = LiveContext(store=InMemoryStore(), calendar=BusinessCalendar())
        live.declare_incident(scope=Scope.parse("resource_tag:pii"), level=2,
                              reason="credential leak", now=now, set_by="spiffe://.../sre")
        live.snapshot("spiffe://example.org/agents/reporter", now,
                      resource_type="App::Dataset", resource_tags={"pii"}).incident  # True
    """

    def __init__(self, *, store: ContextStore, calendar: BusinessCalendar,
                 freshness: Freshness = Freshness(),
                 degraded: DegradedDefaults = DegradedDefaults(),
                 configured: ConfiguredValues = ConfiguredValues(),
                 risk_ttl_s: float | None = 3600.0, started_at: datetime | None = None) -> None:
        self.store = store
        self.calendar = calendar
        self.freshness = freshness
        self.degraded_defaults = degraded
        self.configured = configured
        self.risk_ttl_s = risk_ttl_s
        self._started_at = started_at or datetime.now(UTC)
        self._hours_cache: tuple[datetime, datetime, bool] | None = None
        self._plain = _PlainSources()

    # -- the hot path -------------------------------------------------------

    def snapshot(self, principal_id: str | None, now: datetime, *,
                 resource_type: str | None = None,
                 resource_tags: Collection[str] = ()) -> LiveSnapshot:
        """The live context for this principal and resource at ``now``; never raises, no I/O."""
        view = self.store.view()
        state = view.state
        facts = RequestFacts(principal_id, resource_type, frozenset(resource_tags))
        degraded: list[str] = []
        horizon: list[datetime] = []
        business, hours_change = self._business_hours(now)
        if hours_change is not None:
            horizon.append(hours_change)
        plain = self._plain
        sources: dict[str, ValueSource] = {
            "now": ValueSource("clock", now),
            "business_hours": plain(f"calendar:{self.calendar.timezone}"),
        }

        fresh_incidents = _fresh(view.age_s, self.freshness.incident_max_age_s)
        incidents = self._incidents(state, now, facts, fresh=fresh_incidents)
        if not fresh_incidents:
            degraded.append("incident")
        for incident in incidents:
            if incident.ends_at is not None:
                horizon.append(incident.ends_at)
        sources["incident"] = self._incident_source(view, incidents, fresh_incidents)

        fresh_risk = _fresh(view.age_s, self.freshness.risk_max_age_s)
        global_level, global_entry = self._global_risk(state, now)
        manual = state.principal_risk.get(principal_id or "")
        auto = state.auto_risk.get(principal_id or "")
        manual_level = manual.level_at(now) if manual else 0
        auto_level = auto.level_at(now) if auto else 0
        principal_level = max(manual_level, auto_level)
        for entry in (global_entry, manual, auto):
            if entry is not None and (at := _entry_change(entry, now)) is not None:
                horizon.append(at)
        risk_age = _Age(age_s=view.age_s, max_age_s=self.freshness.risk_max_age_s)
        if fresh_risk:
            sources["global_risk_level"] = _risk_source(
                global_entry, "config" if global_entry is None else view.source, plain,
                **risk_age)
            top = auto if auto_level >= manual_level and auto is not None else manual
            sources["principal_risk_level"] = _risk_source(
                top if principal_level else None, view.source, plain, **risk_age)
        else:
            degraded += ["global_risk_level", "principal_risk_level"]
            global_level = max(global_level, self.degraded_defaults.global_risk_level)
            principal_level = max(principal_level, self.degraded_defaults.principal_risk_level)
            sources["global_risk_level"] = plain("default", **risk_age)
            sources["principal_risk_level"] = plain("default", **risk_age)
        sources["risk_level"] = (sources["principal_risk_level"] if principal_level > global_level
                                 else sources["global_risk_level"])

        notes = [f"{INCIDENT_LEVELS[i.level]} incident {i.id} for {i.scope}"
                 + (f": {i.reason}" if i.reason else "") for i in incidents[:3]]
        signals: tuple[str, ...] = ()
        if auto is not None and auto_level > 0:
            signals = auto.signals
            decayed = f" (decayed to {risk_name(auto_level)})" if auto_level < auto.level else ""
            notes.append(f"{auto.summary}{decayed}")
            sources["signals"] = ValueSource("behaviour", set_at=auto.set_at,
                                             expires_at=auto.gone_at(), age_s=view.age_s)
        version = state.version
        if degraded:
            version += "~degraded"
            notes.append(f"live context degraded ({', '.join(degraded)}: {_why(view)}); "
                         "conservative defaults were used")
            horizon.append(now + timedelta(seconds=self.degraded_defaults.ttl_s))
        elif view.shared and view.age_s is not None:
            # Data from a shared store goes stale if it is not confirmed again.
            oldest = min(self.freshness.incident_max_age_s, self.freshness.risk_max_age_s)
            horizon.append(now + timedelta(seconds=max(0.0, oldest - view.age_s)))

        return LiveSnapshot(
            now=now, incident=bool(incidents), risk_level=max(global_level, principal_level),
            business_hours=business, version=version, sources=sources, degraded=tuple(degraded),
            incident_level=max((i.level for i in incidents), default=0),
            global_risk_level=global_level, principal_risk_level=principal_level,
            incidents=incidents, signals=signals, notes=tuple(notes),
            valid_until=min(horizon) if horizon else None)

    def _incidents(self, state: ContextState, now: datetime, facts: RequestFacts,
                   *, fresh: bool) -> tuple[Incident, ...]:
        active = [i for i in state.incidents if i.active(now)]
        if not state.incidents and self.configured.incident:
            active.append(self._config_incident())
        applicable = [i for i in active if i.scope.applies(facts)]
        if not fresh and self.degraded_defaults.incident_level > 0:
            applicable.append(Incident(
                id="degraded-default", scope=Scope(), level=self.degraded_defaults.incident_level,
                reason="live context is degraded: the configured default applies",
                set_at=now, source="default"))
        return tuple(applicable)

    def _incident_source(self, view: StoreView, incidents: tuple[Incident, ...],
                         fresh: bool) -> ValueSource:
        age = _Age(age_s=view.age_s, max_age_s=self.freshness.incident_max_age_s)
        if not fresh:
            return self._plain("default", **age)
        if not incidents:
            return self._plain(view.source, **age)
        latest = max(incidents, key=lambda i: i.set_at)
        ends = [i.ends_at for i in incidents if i.ends_at is not None]
        source = "config" if latest.source == "config" else view.source
        return ValueSource(source, set_at=latest.set_at, set_by=latest.set_by,
                           expires_at=min(ends) if ends else None, **age)

    def _global_risk(self, state: ContextState, now: datetime) -> tuple[int, RiskEntry | None]:
        entry = state.global_risk
        if entry is None or (entry.expires_at is not None and now >= entry.expires_at):
            return self.configured.risk_level, None
        return entry.level_at(now), entry

    def _config_incident(self) -> Incident:
        return Incident(id="config", scope=Scope(), level=1,
                        reason="incident mode is set in the configuration ([live] incident)",
                        set_at=self._started_at,
                        source="config")

    def _business_hours(self, now: datetime) -> tuple[bool, datetime | None]:
        cached = self._hours_cache
        if cached is not None and cached[0] <= now < cached[1]:
            return cached[2], cached[1]
        open_ = self.calendar.is_business_hours(now)
        change = self.calendar.next_change(now)
        if change is not None:
            self._hours_cache = (now, change, open_)
        return open_, change

    # -- administration ------------------------------------------------------

    def declare_incident(self, *, scope: Scope, level: int, reason: str, now: datetime,
                         set_by: str | None = None, ends_at: datetime | None = None,
                         authorized_by: str | None = None,
                         incident_id: str | None = None) -> tuple[Incident, str]:
        """Declare (or, with an existing ``incident_id``, replace) an incident; -> (it, version)."""
        if incident_id is not None and not _INCIDENT_ID.fullmatch(incident_id):
            raise ValueError("incident id: 1-64 of A-Z a-z 0-9 . _ - (starting alphanumeric)")
        if ends_at is not None and ends_at <= now:
            raise ValueError("ends_at must be in the future")
        incident = Incident(id=incident_id or f"inc-{secrets.token_hex(4)}", scope=scope,
                            level=level, reason=reason, set_at=now, set_by=set_by,
                            ends_at=ends_at, authorized_by=authorized_by)
        state = self._write(ContextChange(puts={incident_key(incident.id): incident}), now)
        return incident, state.version

    def clear_incidents(self, *, now: datetime,
                        incident_id: str | None = None) -> tuple[tuple[Incident, ...], str]:
        """End one incident (by id) or all of them; -> (those ended, version)."""
        state = self.store.view().state
        ended = tuple(i for i in state.incidents
                      if i.active(now) and (incident_id is None or i.id == incident_id))
        if not ended:
            return (), state.version
        state = self._write(ContextChange(deletes=tuple(incident_key(i.id) for i in ended)), now)
        return ended, state.version

    def set_risk(self, *, level: int, reason: str, now: datetime, principal: str | None = None,
                 set_by: str | None = None, expires_at: datetime | None = None,
                 authorized_by: str | None = None) -> tuple[RiskEntry | None, str]:
        """Set the global risk level, or a principal's (which replaces an automatic raise).

        A principal's level 0 clears its entries. Without ``expires_at`` the
        configured default lifetime applies. -> (the entry, version).
        """
        if expires_at is None and self.risk_ttl_s is not None:
            expires_at = now + timedelta(seconds=self.risk_ttl_s)
        if expires_at is not None and expires_at <= now:
            raise ValueError("expires_at must be in the future")
        entry = RiskEntry(level=level, reason=reason, set_at=now, set_by=set_by,
                          expires_at=expires_at, authorized_by=authorized_by)
        kept: RiskEntry | None = entry  # None: level 0 removes the principal's entries
        if principal is None:
            change = ContextChange(puts={GLOBAL_RISK_KEY: entry})
        elif level == 0:
            change = ContextChange(deletes=(principal_risk_key(principal),
                                            auto_risk_key(principal)))
            kept = None
        else:
            change = ContextChange(puts={principal_risk_key(principal): entry},
                                   deletes=(auto_risk_key(principal),))
        state = self._write(change, now)
        return kept, state.version

    def raise_automatically(self, principal: str, entry: RiskEntry) -> None:
        """An automatic raise: enforced here at once, shared through the store when it can be."""
        self.store.apply_soon(ContextChange(puts={auto_risk_key(principal): entry}))

    def automatic_level(self, principal: str, now: datetime) -> int:
        entry = self.store.view().state.auto_risk.get(principal)
        return entry.level_at(now) if entry is not None else 0

    def _write(self, change: ContextChange, now: datetime) -> ContextState:
        return self.store.apply(change.with_deletes(self.store.view().state.expired_keys(now)))

    # -- reading it back -------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """For ``/readyz``: is the context store reachable, is anything stale?"""
        view = self.store.view()
        stale = [name for name, limit in (("incident", self.freshness.incident_max_age_s),
                                          ("risk", self.freshness.risk_max_age_s))
                 if not _fresh(view.age_s, limit)]
        return {"status": "ok" if view.reachable and not stale else "degraded",
                "backend": self.store.backend, "source": view.source,
                "reachable": view.reachable, "error": view.error,
                "age_s": round(view.age_s, 3) if view.age_s is not None else None,
                "stale": stale, "version": view.state.version}

    def describe(self, now: datetime) -> dict[str, Any]:
        """Everything in force at ``now``, with sources and ages (``GET /v1/context``)."""
        view = self.store.view()
        state = view.state
        age = round(view.age_s, 3) if view.age_s is not None else None

        def aged(d: dict[str, Any], set_at: datetime) -> dict[str, Any]:
            return {**d, "source": d.get("source") if d.get("source") in ("config", "default")
                    else view.source, "age_s": age,
                    "since_set_s": round((now - set_at).total_seconds(), 3)}

        incidents = [aged(i.as_dict(), i.set_at) for i in state.incidents if i.active(now)]
        if not state.incidents and self.configured.incident:
            incidents.append(aged(self._config_incident().as_dict(), now))
        global_level, global_entry = self._global_risk(state, now)
        principals: dict[str, dict[str, Any]] = {}
        for kind, table in (("manual", state.principal_risk), ("automatic", state.auto_risk)):
            for pid, entry in table.items():
                level = entry.level_at(now)
                if level > 0:
                    principals.setdefault(pid, {})[kind] = {
                        **aged(entry.as_dict(), entry.set_at), "level_now": level}
        for parts in principals.values():
            parts["level"] = max(p["level_now"] for p in parts.values())
        business, change = self._business_hours(now)
        return {
            "version": state.version,
            "now": now.isoformat().replace("+00:00", "Z"),
            "store": self.health(),
            "incidents": incidents,
            "risk": {"global": {"level": global_level, "level_name": risk_name(global_level),
                                "entry": aged(global_entry.as_dict(), global_entry.set_at)
                                if global_entry else None,
                                "source": view.source if global_entry else "config"},
                     "principals": principals},
            "business_hours": {"open": business, "timezone": self.calendar.timezone,
                               "next_change": change.isoformat().replace("+00:00", "Z")
                               if change else None},
            "freshness": {"incident_max_age_s": self.freshness.incident_max_age_s,
                          "risk_max_age_s": self.freshness.risk_max_age_s},
            "degraded_defaults": {
                "incident_level": self.degraded_defaults.incident_level,
                "global_risk_level": self.degraded_defaults.global_risk_level,
                "principal_risk_level": self.degraded_defaults.principal_risk_level},
            "levels": {"risk": ["low", "medium", "high", "critical"],
                       "incident": list(INCIDENT_LEVELS)},
        }

    def close(self) -> None:
        self.store.close()


def _fresh(age_s: float | None, max_age_s: float) -> bool:
    return age_s is not None and age_s <= max_age_s


def _why(view: StoreView) -> str:
    if view.age_s is None:
        return f"{view.source} was never reached" + (f": {view.error}" if view.error else "")
    if not view.reachable:
        return (f"{view.source} unreachable, last confirmed {view.age_s:.0f} s ago"
                + (f": {view.error}" if view.error else ""))
    return f"last confirmed {view.age_s:.0f} s ago"


def _entry_change(entry: RiskEntry, now: datetime) -> datetime | None:
    change = entry.next_change(now)
    if change is None and entry.expires_at is not None and entry.expires_at > now:
        change = entry.expires_at  # a level-0 entry ending: the configured level returns
    return change


class _PlainSources:
    """The sources that name only where a value came from and how fresh it is (no entry
    behind them: ``memory``, ``config``, ``calendar:UTC``), one instance per distinct
    value, so that the source's JSON is rendered once (``ValueSource.as_dict``), not
    once per decision. The instance is immutable, so sharing it shares nothing that
    can change; each ``age_s`` of a shared store's view is a value of its own.
    """

    MAX = 256
    """Distinct values kept (a shared store's age changes with every sync: those go)."""

    def __init__(self) -> None:
        self._made: dict[tuple[object, ...], ValueSource] = {}

    def __call__(self, source: str, age_s: float | None = None,
                 max_age_s: float | None = None) -> ValueSource:
        # The types are part of the key: 0 == 0.0, yet they render as "0" and "0.0".
        key = (source, age_s, type(age_s), max_age_s, type(max_age_s))
        made = self._made.get(key)
        if made is None:
            if len(self._made) >= self.MAX:
                self._made.clear()
            made = self._made[key] = ValueSource(source, age_s=age_s, max_age_s=max_age_s)
        return made


def _risk_source(entry: RiskEntry | None, source: str, plain: _PlainSources,
                 **age: Unpack[_Age]) -> ValueSource:
    if entry is None:
        return plain(source, **age)
    return ValueSource("behaviour" if entry.automatic else source, set_at=entry.set_at,
                       set_by=entry.set_by, expires_at=entry.expires_at or entry.gone_at(), **age)


__all__ = ["ConfiguredValues", "DegradedDefaults", "Freshness", "LiveContext"]
