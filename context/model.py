"""The live-context snapshot a decision sees."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar, overload

from context.state import Incident

_T = TypeVar("_T")


def frozen_memo(owner: object, slot: str, render: Callable[[], _T]) -> _T:
    """``owner``'s memo ``slot`` (a field ``init=False``, None until set), rendered at the
    first read. The owner is frozen: setting its memo is not a change of its value."""
    value: _T | None = getattr(owner, slot)
    if value is None:
        value = render()
        object.__setattr__(owner, slot, value)
    return value


@dataclass(frozen=True, slots=True)
class ValueSource:
    """Where a live value came from and when it was set.

    ``age_s`` is how long ago this replica last confirmed the value with its
    source (0 in process; the time since the last Redis sync otherwise): a
    value older than ``max_age_s`` is stale and replaced by the configured
    conservative default.
    """

    source: str
    set_at: datetime | None = None
    set_by: str | None = None
    expires_at: datetime | None = None
    age_s: float | None = None
    max_age_s: float | None = None
    # ``as_dict`` rendered at its first call: the provider hands the same source to every
    # snapshot while it holds (``context.live``), so its timestamps are formatted once.
    _json: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON for a snapshot's ``sources`` (a dict of the caller's own: a copy of the one
        rendered, so that changing it changes nothing another decision reads)."""
        rendered = self._json
        if rendered is None:
            rendered = {"source": self.source, "set_at": _iso(self.set_at),
                        "set_by": self.set_by, "expires_at": _iso(self.expires_at),
                        "age_s": round(self.age_s, 3) if self.age_s is not None else None,
                        "max_age_s": self.max_age_s}
            object.__setattr__(self, "_json", rendered)  # frozen: a memo, not a change
        return dict(rendered)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ValueSource:
        return cls(source=str(d.get("source", "")), set_at=_parse(d.get("set_at")),
                   set_by=d.get("set_by"), expires_at=_parse(d.get("expires_at")),
                   age_s=d.get("age_s"), max_age_s=d.get("max_age_s"))


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """What is true at ``now`` for one principal and resource. Immutable: one per decision.

    - ``incident`` / ``incident_level``: an incident applies to *this* request
      (its scope matched the principal or resource); the highest level of those.
    - ``risk_level`` is ``max(global_risk_level, principal_risk_level)``.
    - ``degraded`` names the values that were stale or unreachable and were
      replaced by conservative defaults.
    - ``notes`` are sentences a decision's explanation repeats (an automatic
      risk raise with its evidence, degraded context).
    - ``valid_until`` is the next scheduled change (an incident's end, a risk
      expiry or decay step, a business-hours boundary, data going stale).

    The constructor keeps the parts consistent: ``incident`` iff
    ``incident_level > 0``, and ``risk_level`` is at least each of its parts.
    """

    now: datetime
    incident: bool
    risk_level: int
    business_hours: bool
    version: str = "static"
    sources: Mapping[str, ValueSource] = field(default_factory=dict)
    degraded: tuple[str, ...] = ()
    incident_level: int = 0
    global_risk_level: int = 0
    principal_risk_level: int = 0
    incidents: tuple[Incident, ...] = ()
    signals: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    valid_until: datetime | None = None
    # ``to_cedar`` rendered at its first call: every Cedar request made with this snapshot
    # (a delegated decision's second one, a benchmark's or ``pdp test``'s many) shares it.
    _cedar: dict[str, Any] | None = field(default=None, init=False, repr=False,
                                          compare=False)
    # ``now`` as RFC 3339 text (``now_text``), formatted once: ``to_cedar`` (Cedar's request)
    # and ``as_dict`` show it to milliseconds, a decision's timestamp to microseconds.
    _now_text: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.incident and self.incident_level == 0:
            object.__setattr__(self, "incident_level", 1)
        elif self.incident_level > 0 and not self.incident:
            object.__setattr__(self, "incident", True)
        top = max(self.risk_level, self.global_risk_level, self.principal_risk_level)
        if top != self.risk_level:
            object.__setattr__(self, "risk_level", top)

    def to_cedar(self) -> dict[str, Any]:
        """The value of ``context.live`` (Cedar type ``Pdp::Live``). Rendered once and
        shared: the snapshot is frozen, and no caller changes the value (Cedar reads it)."""
        return frozen_memo(self, "_cedar", self._render_cedar)

    def now_text(self) -> str:
        """``now`` in UTC to the microsecond, ``Z`` for the zone (as ``isoformat`` writes
        it: no fraction when it is zero)."""
        return frozen_memo(self, "_now_text", lambda: _iso(self.now))

    def _now_rfc3339(self) -> str:
        return to_milliseconds(self.now_text())

    def _render_cedar(self) -> dict[str, Any]:
        return {
            "now": {"__extn": {"fn": "datetime", "arg": self._now_rfc3339()}},
            "incident": self.incident,
            "incident_level": self.incident_level,
            "risk_level": self.risk_level,
            "global_risk_level": self.global_risk_level,
            "principal_risk_level": self.principal_risk_level,
            "business_hours": self.business_hours,
            "degraded": bool(self.degraded),
            "signals": list(self.signals),
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON for responses and the decision record (enough to replay: see ``from_dict``)."""
        return {
            "now": self._now_rfc3339(),
            "incident": self.incident,
            "incident_level": self.incident_level,
            "incidents": [i.as_dict() for i in self.incidents],
            "risk_level": self.risk_level,
            "global_risk_level": self.global_risk_level,
            "principal_risk_level": self.principal_risk_level,
            "business_hours": self.business_hours,
            "signals": list(self.signals),
            "version": self.version,
            "sources": {k: v.as_dict() for k, v in self.sources.items()},
            "degraded": list(self.degraded),
            "notes": list(self.notes),
            "valid_until": _iso(self.valid_until),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LiveSnapshot:
        """The snapshot ``as_dict`` rendered (e.g. from a decision record, for replay)."""
        now = _parse(d["now"])
        assert now is not None
        return cls(
            now=now, incident=bool(d.get("incident", False)),
            risk_level=int(d.get("risk_level", 0)),
            business_hours=bool(d.get("business_hours", False)),
            version=str(d.get("version", "static")),
            sources={k: ValueSource.from_dict(v) for k, v in (d.get("sources") or {}).items()},
            degraded=tuple(d.get("degraded") or ()),
            incident_level=int(d.get("incident_level", 0)),
            global_risk_level=int(d.get("global_risk_level", 0)),
            principal_risk_level=int(d.get("principal_risk_level", 0)),
            incidents=tuple(Incident.from_dict(i) for i in d.get("incidents") or ()),
            signals=tuple(d.get("signals") or ()), notes=tuple(d.get("notes") or ()),
            valid_until=_parse(d.get("valid_until")))

    def with_overrides(self, **values: Any) -> LiveSnapshot:
        """A copy with some values replaced, e.g. by a `pdp test` case or a replay.

        Related values follow: ``incident: false`` clears the level, a level
        sets ``incident``; ``risk_level`` caps both parts, and a part given
        alone recomputes ``risk_level``. ``degraded: true`` marks the snapshot
        degraded.
        """
        if "incident" in values and "incident_level" not in values:
            values["incident_level"] = (self.incident_level or 1) if values["incident"] else 0
        if "incident_level" in values and "incident" not in values:
            values["incident"] = int(values["incident_level"]) > 0
        if "risk_level" in values:
            cap = int(values["risk_level"])
            values.setdefault("global_risk_level", min(self.global_risk_level, cap))
            values.setdefault("principal_risk_level", min(self.principal_risk_level, cap))
        elif "global_risk_level" in values or "principal_risk_level" in values:
            values["risk_level"] = max(int(values.get("global_risk_level", self.global_risk_level)),
                                       int(values.get("principal_risk_level",
                                                      self.principal_risk_level)))
        if isinstance(values.get("degraded"), bool):
            values["degraded"] = ("override",) if values["degraded"] else ()
        for key in ("signals", "notes", "degraded"):
            if key in values and not isinstance(values[key], tuple):
                values[key] = tuple(values[key])
        sources = dict(self.sources)
        for key in values:
            sources[key] = ValueSource("override")
        return replace(self, sources=sources, **values)


def cedar_datetime(at: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, the form Cedar's ``datetime()`` accepts."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_milliseconds(iso_z: str) -> str:
    """``cedar_datetime(at)`` from ``_iso(at)``'s text: the fraction cut to milliseconds
    (``isoformat`` truncates too), ``.000`` where ``_iso`` wrote none."""
    return iso_z[:23] + "Z" if len(iso_z) > 20 else iso_z[:-1] + ".000Z"


@overload
def _iso(at: datetime) -> str: ...
@overload
def _iso(at: None) -> None: ...
def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z") if at is not None else None


def _parse(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    at = value if isinstance(value, datetime) else datetime.fromisoformat(
        str(value).replace("Z", "+00:00"))
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
