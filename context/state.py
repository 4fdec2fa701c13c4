"""The shared live-context state: incidents and risk levels, one version at a time.

Every replica holds a ``ContextState``: in process (``InMemoryStore``) or a
local copy of what Redis holds (``RedisContextStore``). It is a flat mapping
``key -> entry``, exactly as stored in Redis (one hash field per entry)::

    incident:<id>              an Incident (scoped, levelled, optionally ending)
    risk:global                the global RiskEntry
    risk:principal:<id>        a principal's RiskEntry set by an administrator
    risk:auto:<id>             a principal's RiskEntry raised by the behaviour monitor

A change is a ``ContextChange`` (entries to put, keys to delete) applied as
one transaction, after which the store's ``version`` is different: decisions
carry that version, so a PEP cache can tell that the context moved.

Levels: risk ``0 low, 1 medium, 2 high, 3 critical``; incidents ``1 minor,
2 major, 3 critical`` (0 means no incident applies).
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

RISK_LEVELS = ("low", "medium", "high", "critical")
INCIDENT_LEVELS = ("none", "minor", "major", "critical")

GLOBAL_RISK_KEY = "risk:global"
INCIDENT_PREFIX = "incident:"
PRINCIPAL_RISK_PREFIX = "risk:principal:"
AUTO_RISK_PREFIX = "risk:auto:"


def risk_name(level: int) -> str:
    """``2`` -> ``"high"``."""
    return RISK_LEVELS[max(0, min(level, 3))]


def parse_level(value: int | str, names: tuple[str, ...] = RISK_LEVELS) -> int:
    """A level given as a number (``"2"``) or a name (``"high"``); ValueError otherwise."""
    text = str(value).strip().lower()
    if text in names:
        return names.index(text)
    try:
        level = int(text)
    except ValueError:
        raise ValueError(f"level {value!r}: give 0-3 or one of {', '.join(names)}") from None
    if not 0 <= level <= 3:
        raise ValueError(f"level {value!r} is out of range 0-3")
    return level


class ScopeKind(StrEnum):
    """What an incident applies to."""

    GLOBAL = "global"                  # every request
    TRUST_DOMAIN = "trust_domain"      # principals of one SPIFFE trust domain, e.g. example.org
    SPIFFE_PREFIX = "spiffe_prefix"    # principals under a SPIFFE ID path, e.g. spiffe://example.org/agents
    RESOURCE_TYPE = "resource_type"    # resources of one Cedar type, e.g. App::Dataset
    RESOURCE_TAG = "resource_tag"      # resources whose `tags` contain a tag, e.g. pii


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What incident scopes are matched against: who asks, about what."""

    principal_id: str | None = None
    resource_type: str | None = None
    resource_tags: frozenset[str] = frozenset()

    @property
    def trust_domain(self) -> str:
        pid = self.principal_id or ""
        if not pid.startswith("spiffe://"):
            return ""
        return pid[len("spiffe://"):].partition("/")[0]


@dataclass(frozen=True, slots=True)
class Scope:
    """An incident's scope, written ``kind:value`` (or ``global``).

    A SPIFFE prefix matches on whole path segments:
    ``spiffe://example.org/agents`` covers ``spiffe://example.org/agents/reporter``
    but not ``spiffe://example.org/agents-old/x``.
    """

    kind: ScopeKind = ScopeKind.GLOBAL
    value: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ScopeKind(self.kind))
        if self.kind is ScopeKind.GLOBAL:
            if self.value:
                raise ValueError("a global scope takes no value")
            return
        if not self.value or self.value != self.value.strip():
            raise ValueError(f"scope {self.kind}: needs a value without surrounding spaces")
        if self.kind is ScopeKind.SPIFFE_PREFIX and not self.value.startswith("spiffe://"):
            raise ValueError("a spiffe_prefix scope starts with spiffe://")
        if self.kind is ScopeKind.TRUST_DOMAIN and ("/" in self.value or ":" in self.value):
            raise ValueError("a trust_domain scope is a bare trust domain name, e.g. example.org")

    @classmethod
    def parse(cls, text: str) -> Scope:
        """``global``, ``trust_domain:example.org``, ``resource_tag:pii``, ..."""
        kind, sep, value = text.strip().partition(":")
        try:
            return cls(ScopeKind(kind), value if sep else "")
        except ValueError as e:
            raise ValueError(f"scope {text!r}: {e}; kinds: "
                             f"{', '.join(k.value for k in ScopeKind)}") from None

    def __str__(self) -> str:
        return self.kind.value if self.kind is ScopeKind.GLOBAL else f"{self.kind}:{self.value}"

    def applies(self, request: RequestFacts) -> bool:
        match self.kind:
            case ScopeKind.GLOBAL:
                return True
            case ScopeKind.TRUST_DOMAIN:
                return request.trust_domain == self.value
            case ScopeKind.SPIFFE_PREFIX:
                pid, prefix = request.principal_id or "", self.value.rstrip("/")
                return pid == prefix or pid.startswith(prefix + "/")
            case ScopeKind.RESOURCE_TYPE:
                return request.resource_type == self.value
            case ScopeKind.RESOURCE_TAG:
                return self.value in request.resource_tags
        return False  # pragma: no cover


@dataclass(frozen=True, slots=True)
class Incident:
    """Incident mode for a scope: declared by someone, for a reason, maybe until a time."""

    id: str
    scope: Scope
    level: int
    reason: str
    set_at: datetime
    set_by: str | None = None
    ends_at: datetime | None = None
    authorized_by: str | None = None   # the decision id that allowed the change
    source: str = "admin"              # "admin", "config" or "default" (degraded)

    def __post_init__(self) -> None:
        if not 1 <= self.level <= 3:
            raise ValueError("incident level is 1 (minor) ... 3 (critical)")

    def active(self, now: datetime) -> bool:
        return self.ends_at is None or now < self.ends_at

    def as_dict(self) -> dict[str, Any]:
        return {"type": "incident", "id": self.id, "scope": str(self.scope),
                "level": self.level, "level_name": INCIDENT_LEVELS[self.level],
                "reason": self.reason, "set_at": _iso(self.set_at), "set_by": self.set_by,
                "ends_at": _iso(self.ends_at), "authorized_by": self.authorized_by,
                "source": self.source}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Incident:
        return cls(id=str(d["id"]), scope=Scope.parse(str(d["scope"])), level=int(d["level"]),
                   reason=str(d.get("reason", "")), set_at=_required_time(d["set_at"]),
                   set_by=d.get("set_by"), ends_at=_parse_time(d.get("ends_at")),
                   authorized_by=d.get("authorized_by"), source=str(d.get("source", "admin")))


@dataclass(frozen=True, slots=True)
class RiskEntry:
    """A risk level, who set it and why, until when.

    An automatic raise (``automatic``) carries its ``evidence``, ``signals`` and the
    ids of the ``decisions`` that fired them, and steps down one level every
    ``decay_s`` seconds until it is gone.
    """

    level: int
    reason: str
    set_at: datetime
    set_by: str | None = None
    expires_at: datetime | None = None
    decay_s: float | None = None
    automatic: bool = False
    evidence: tuple[str, ...] = ()
    signals: tuple[str, ...] = ()
    authorized_by: str | None = None
    decisions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.level <= 3:
            raise ValueError("risk level is 0 (low) ... 3 (critical)")
        if self.decay_s is not None and self.decay_s <= 0:
            raise ValueError("decay_s must be positive")

    def level_at(self, now: datetime) -> int:
        """The level in force at ``now`` (0 once expired or decayed away)."""
        if self.expires_at is not None and now >= self.expires_at:
            return 0
        if self.decay_s is None or now <= self.set_at:
            return self.level
        steps = math.floor((now - self.set_at).total_seconds() / self.decay_s)
        return max(0, self.level - steps)

    def next_change(self, now: datetime) -> datetime | None:
        """When ``level_at`` will next differ from its value at ``now`` (None: never)."""
        if self.level_at(now) == 0:
            return None
        candidates = [self.expires_at] if self.expires_at is not None else []
        if self.decay_s is not None:
            elapsed = max(0.0, (now - self.set_at).total_seconds())
            step = math.floor(elapsed / self.decay_s) + 1
            candidates.append(self.set_at + timedelta(seconds=step * self.decay_s))
        return min(candidates) if candidates else None

    def gone_at(self) -> datetime | None:
        """When the entry stops mattering (expired or fully decayed)."""
        ends = [self.expires_at] if self.expires_at is not None else []
        if self.decay_s is not None:
            ends.append(self.set_at + timedelta(seconds=self.level * self.decay_s))
        return min(ends) if ends else None

    @property
    def summary(self) -> str:
        """``risk raised to high: 40 denies in 60 s`` (automatic) or the admin's reason."""
        if self.automatic:
            return f"risk raised to {risk_name(self.level)}: {'; '.join(self.evidence)}"
        return self.reason

    def as_dict(self) -> dict[str, Any]:
        return {"type": "risk", "level": self.level, "level_name": risk_name(self.level),
                "reason": self.reason, "set_at": _iso(self.set_at), "set_by": self.set_by,
                "expires_at": _iso(self.expires_at), "decay_s": self.decay_s,
                "automatic": self.automatic, "evidence": list(self.evidence),
                "signals": list(self.signals), "authorized_by": self.authorized_by,
                "decisions": list(self.decisions)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RiskEntry:
        decay = d.get("decay_s")
        return cls(level=int(d["level"]), reason=str(d.get("reason", "")),
                   set_at=_required_time(d["set_at"]), set_by=d.get("set_by"),
                   expires_at=_parse_time(d.get("expires_at")),
                   decay_s=float(decay) if decay is not None else None,
                   automatic=bool(d.get("automatic", False)),
                   evidence=tuple(d.get("evidence") or ()), signals=tuple(d.get("signals") or ()),
                   authorized_by=d.get("authorized_by"),
                   decisions=tuple(str(i) for i in d.get("decisions") or ()))


Entry = Incident | RiskEntry


def incident_key(incident_id: str) -> str:
    return INCIDENT_PREFIX + incident_id


def principal_risk_key(principal_id: str) -> str:
    return PRINCIPAL_RISK_PREFIX + principal_id


def auto_risk_key(principal_id: str) -> str:
    return AUTO_RISK_PREFIX + principal_id


def entry_to_json(entry: Entry) -> str:
    return json.dumps(entry.as_dict(), sort_keys=True, separators=(",", ":"))


def entry_from_json(text: str | bytes) -> Entry:
    d = json.loads(text)
    if d.get("type") == "incident":
        return Incident.from_dict(d)
    if d.get("type") == "risk":
        return RiskEntry.from_dict(d)
    raise ValueError(f"unknown context entry type {d.get('type')!r}")


@dataclass(frozen=True, slots=True)
class ContextChange:
    """One transaction: put these entries, delete these keys."""

    puts: Mapping[str, Entry] = field(default_factory=dict)
    deletes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.puts or self.deletes)

    def apply(self, entries: Mapping[str, Entry]) -> dict[str, Entry]:
        out = {k: v for k, v in entries.items() if k not in self.deletes}
        out.update(self.puts)
        return out

    def with_deletes(self, keys: Collection[str]) -> ContextChange:
        extra = tuple(k for k in keys if k not in self.puts and k not in self.deletes)
        return replace(self, deletes=self.deletes + extra)


@dataclass(frozen=True, slots=True)
class ContextState:
    """Every entry, indexed for the hot path, and the version it was read at."""

    version: str
    entries: Mapping[str, Entry]
    incidents: tuple[Incident, ...]
    global_risk: RiskEntry | None
    principal_risk: Mapping[str, RiskEntry]
    auto_risk: Mapping[str, RiskEntry]

    @classmethod
    def of(cls, entries: Mapping[str, Entry], version: str) -> ContextState:
        incidents: list[Incident] = []
        principal: dict[str, RiskEntry] = {}
        auto: dict[str, RiskEntry] = {}
        global_risk = None
        for key, entry in entries.items():
            if isinstance(entry, Incident) and key.startswith(INCIDENT_PREFIX):
                incidents.append(entry)
            elif isinstance(entry, RiskEntry):
                if key == GLOBAL_RISK_KEY:
                    global_risk = entry
                elif key.startswith(PRINCIPAL_RISK_PREFIX):
                    principal[key[len(PRINCIPAL_RISK_PREFIX):]] = entry
                elif key.startswith(AUTO_RISK_PREFIX):
                    auto[key[len(AUTO_RISK_PREFIX):]] = entry
        incidents.sort(key=lambda i: (i.set_at, i.id))
        return cls(version=version, entries=dict(entries), incidents=tuple(incidents),
                   global_risk=global_risk, principal_risk=principal, auto_risk=auto)

    @classmethod
    def empty(cls, version: str = "0") -> ContextState:
        return cls.of({}, version)

    def applied(self, change: ContextChange, version: str) -> ContextState:
        return ContextState.of(change.apply(self.entries), version)

    def expired_keys(self, now: datetime) -> list[str]:
        """Entries that no longer matter at ``now``: writers prune them with their change."""
        out = []
        for key, entry in self.entries.items():
            if isinstance(entry, Incident) and not entry.active(now):
                out.append(key)
            elif isinstance(entry, RiskEntry):
                gone = entry.gone_at()
                if gone is not None and now >= gone:
                    out.append(key)
        return out


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z") if at is not None else None


def _required_time(value: Any) -> datetime:
    """A time every stored entry has (``set_at``): a record without one is malformed."""
    at = _parse_time(value)
    if at is None:
        raise ValueError("a stored context entry has no set_at time")
    return at


def _parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        at = value
    else:
        at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


__all__ = [
    "AUTO_RISK_PREFIX", "GLOBAL_RISK_KEY", "INCIDENT_LEVELS", "INCIDENT_PREFIX",
    "PRINCIPAL_RISK_PREFIX", "RISK_LEVELS", "ContextChange", "ContextState", "Entry",
    "Incident", "RequestFacts", "RiskEntry", "Scope", "ScopeKind", "auto_risk_key",
    "entry_from_json", "entry_to_json", "incident_key", "parse_level", "principal_risk_key",
    "risk_name",
]
