"""The live-context snapshot a decision sees."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class ValueSource:
    """Where a live value came from and when it was set."""

    source: str
    set_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source,
                "set_at": self.set_at.isoformat() if self.set_at else None}


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """What is true at ``now`` for one principal. Immutable: one per decision."""

    now: datetime
    incident: bool
    risk_level: int
    business_hours: bool
    version: str = "static"
    sources: Mapping[str, ValueSource] = field(default_factory=dict)
    degraded: tuple[str, ...] = ()

    def to_cedar(self) -> dict[str, Any]:
        """The value of ``context.live`` (Cedar type ``Pdp::Live``)."""
        return {
            "now": {"__extn": {"fn": "datetime", "arg": cedar_datetime(self.now)}},
            "incident": self.incident,
            "risk_level": self.risk_level,
            "business_hours": self.business_hours,
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON for responses and the decision record (enough to replay)."""
        return {
            "now": cedar_datetime(self.now),
            "incident": self.incident,
            "risk_level": self.risk_level,
            "business_hours": self.business_hours,
            "version": self.version,
            "sources": {k: v.as_dict() for k, v in self.sources.items()},
            "degraded": list(self.degraded),
        }

    def with_overrides(self, **values: Any) -> LiveSnapshot:
        """A copy with some values replaced, e.g. by a `pdp test` case or a replay."""
        sources = dict(self.sources)
        for key in values:
            sources[key] = ValueSource("override")
        return replace(self, sources=sources, **values)


def cedar_datetime(at: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, the form Cedar's ``datetime()`` accepts."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
