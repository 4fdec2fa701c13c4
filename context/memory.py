"""In-process live context: the default when nothing else is configured."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from context.calendar import BusinessCalendar
from context.live import ConfiguredValues, DegradedDefaults, Freshness, LiveContext
from context.state import (
    GLOBAL_RISK_KEY,
    ContextChange,
    Incident,
    RiskEntry,
    Scope,
    auto_risk_key,
    incident_key,
    principal_risk_key,
)
from context.store import InMemoryStore


class InMemoryContext(LiveContext):
    """Live context held in this process: configured defaults, the calendar, and
    whatever administrators and the behaviour monitor set while it runs."""

    def __init__(self, *, calendar: BusinessCalendar, incident: bool = False,
                 risk_level: int = 0, freshness: Freshness = Freshness(),
                 degraded: DegradedDefaults = DegradedDefaults(),
                 risk_ttl_s: float | None = 3600.0) -> None:
        if not 0 <= risk_level <= 3:
            raise ValueError("risk_level must be 0 (low) ... 3 (critical)")
        super().__init__(store=InMemoryStore(), calendar=calendar, freshness=freshness,
                         degraded=degraded, risk_ttl_s=risk_ttl_s,
                         configured=ConfiguredValues(incident=incident, risk_level=risk_level))

    @property
    def incident(self) -> bool:
        """The configured incident mode (in force while no incident is declared)."""
        return self.configured.incident

    @incident.setter
    def incident(self, value: bool) -> None:
        self.configured = replace(self.configured, incident=bool(value))

    @property
    def risk_level(self) -> int:
        """The configured global risk level (in force while none is set)."""
        return self.configured.risk_level

    @risk_level.setter
    def risk_level(self, value: int) -> None:
        if not 0 <= value <= 3:
            raise ValueError("risk_level must be 0 (low) ... 3 (critical)")
        self.configured = replace(self.configured, risk_level=value)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], *, calendar: BusinessCalendar,
                  principal_id: str | None, now: datetime) -> InMemoryContext:
        """A context holding what a ``pdp test`` case's ``live_state`` describes::

            live_state:
              incidents: [{scope: "resource_tag:pii", level: 3, reason: "leak"}]
              global_risk: 1
              principal_risk: 2                    # this case's principal, set by an admin
              automatic_risk: {level: 2, evidence: ["40 denies in 60 s"], signals: [deny_burst]}
        """
        unknown = set(spec) - {"incidents", "global_risk", "principal_risk", "automatic_risk"}
        if unknown:
            raise ValueError(f"live_state: unknown keys {sorted(unknown)}")
        context = cls(calendar=calendar)
        puts: dict[str, Incident | RiskEntry] = {}
        for i, raw in enumerate(spec.get("incidents") or []):
            incident = Incident(id=str(raw.get("id", f"case-{i + 1}")),
                                scope=Scope.parse(str(raw.get("scope", "global"))),
                                level=int(raw.get("level", 2)), reason=str(raw.get("reason", "")),
                                set_at=now - timedelta(minutes=1), set_by=raw.get("set_by"))
            puts[incident_key(incident.id)] = incident
        if "global_risk" in spec:
            puts[GLOBAL_RISK_KEY] = RiskEntry(level=int(spec["global_risk"]), reason="test",
                                              set_at=now)
        if principal_id is not None and "principal_risk" in spec:
            puts[principal_risk_key(principal_id)] = RiskEntry(
                level=int(spec["principal_risk"]), reason="test", set_at=now)
        auto = spec.get("automatic_risk")
        if principal_id is not None and auto:
            puts[auto_risk_key(principal_id)] = RiskEntry(
                level=int(auto.get("level", 2)), reason="behaviour", set_at=now,
                decay_s=float(auto.get("decay_s", 300)), automatic=True,
                evidence=tuple(auto.get("evidence") or ()),
                signals=tuple(auto.get("signals") or ()))
        context.store.apply(ContextChange(puts=puts))
        return context


__all__ = ["InMemoryContext"]
