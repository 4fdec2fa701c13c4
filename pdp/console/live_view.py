"""Live context as people read it: risk levels with their evidence and decay, business
hours as "open now, closes at ...", and a principal's risk history as steps over time.

The pages get their facts from the API's handlers (``GET /v1/context``) and from the
decision log (:mod:`pdp.audit.context_history`); this module only arranges them,
with the times a reader needs computed here (the next decay step and what it steps
down to, how long until the calendar changes), so the templates hold no logic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from context.state import RiskEntry, ScopeKind, risk_name
from pdp.audit.context_history import PastIncident
from pdp.audit.records import normalize_ts


def when(at: datetime | str | None, now: datetime) -> str:
    """``2026-12-07 17:00 UTC (in 3 h 12 min)``, or ``(4 min ago)``; ``""`` for None."""
    if at is None:
        return ""
    moment = _parse(at) if isinstance(at, str) else at
    seconds = int((moment - now).total_seconds())
    span = _span(abs(seconds))
    relative = f"in {span}" if seconds >= 0 else f"{span} ago"
    return f"{normalize_ts(moment)[:16].replace('T', ' ')} UTC ({relative})"


def _span(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


@dataclass(frozen=True, slots=True)
class RiskPart:
    """One source of a principal's risk: the behaviour monitor's raise or an administrator's."""

    source: str                    # "behaviour" | "administrator"
    level_now: int
    why: str
    signals: tuple[str, ...]
    evidence: tuple[str, ...]
    decisions: tuple[str, ...]
    set_at: str
    set_by: str | None
    next_step: str                 # "steps down to medium at ... (in 3 min)", or ""

    @property
    def level_name(self) -> str:
        return risk_name(self.level_now)


@dataclass(frozen=True, slots=True)
class RiskRow:
    """A principal whose risk is raised now: the level in force and each part behind it."""

    principal: str
    level: int
    parts: tuple[RiskPart, ...]

    @property
    def level_name(self) -> str:
        return risk_name(self.level)


def risk_part(source: str, d: Mapping[str, Any], now: datetime) -> RiskPart:
    """A stored risk entry (as ``GET /v1/context`` shows it) with its next step computed."""
    entry = RiskEntry.from_dict(d)
    level = entry.level_at(now)
    change = entry.next_change(now)
    if change is not None:
        after = entry.level_at(change)
        if entry.expires_at == change:
            next_step = f"ends at {when(change, now)}, back to {risk_name(after)}"
        else:
            next_step = f"steps down to {risk_name(after)} at {when(change, now)}"
    else:
        next_step = "" if level == 0 else "holds until an administrator changes it"
    return RiskPart(source=source, level_now=level, why=entry.summary, signals=entry.signals,
                    evidence=entry.evidence, decisions=entry.decisions,
                    set_at=normalize_ts(entry.set_at), set_by=entry.set_by,
                    next_step=next_step)


def risk_rows(risk: Mapping[str, Any], now: datetime) -> list[RiskRow]:
    """Every principal with raised risk, highest first (``risk`` is the API's ``risk``)."""
    rows = []
    for principal, parts in (risk.get("principals") or {}).items():
        made = [risk_part(source, parts[key], now)
                for key, source in (("automatic", "behaviour"), ("manual", "administrator"))
                if isinstance(parts.get(key), dict)]
        if made:
            rows.append(RiskRow(principal, max(p.level_now for p in made), tuple(made)))
    rows.sort(key=lambda r: (-r.level, r.principal))
    return rows


def business_hours(hours: Mapping[str, Any], now: datetime) -> str:
    """``Open now (calendar UTC); closes at 2026-12-07 17:00 UTC (in 3 h).``"""
    is_open = bool(hours.get("open"))
    text = f"{'Open' if is_open else 'Closed'} now (calendar {hours.get('timezone', 'UTC')})"
    change = hours.get("next_change")
    if change:
        text += f"; {'closes' if is_open else 'opens'} at {when(change, now)}"
    return text + "."


@dataclass(frozen=True, slots=True)
class IncidentView:
    """A past or present incident, with the links that answer "who was denied what"."""

    incident: PastIncident
    state: str                     # "in force" | "ended" | "expired"
    since: str
    until: str

    @property
    def denied(self) -> str:
        """The Decisions search for this incident: denies in its window, and, for an
        incident scoped to principals, theirs (a prefix: the scope matches whole path
        segments, the search any prefix, so it may show a few more, never fewer)."""
        query = {"decision": "deny", "since": self.since, "until": self.until}
        kind, _, value = self.incident.scope.partition(":")
        if kind == ScopeKind.SPIFFE_PREFIX.value:
            query["principal_prefix"] = value
        elif kind == ScopeKind.TRUST_DOMAIN.value:
            query["principal_prefix"] = f"spiffe://{value}/"
        return urlencode(query)

    @property
    def window(self) -> str:
        """The Overview's range for this incident."""
        return urlencode({"since": self.since, "until": self.until})


def incident_views(found: Sequence[PastIncident], now: datetime) -> list[IncidentView]:
    out = []
    for incident in found:
        since, until = incident.window(now)
        if incident.ended_at is not None:
            state = "ended"
        elif incident.end(now) is not None:
            state = "expired"
        else:
            state = "in force"
        out.append(IncidentView(incident, state, since, until))
    return out


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One step of a principal's risk: recorded in the log, or computed from a raise's decay."""

    at: str
    source: str                    # "behaviour" | "administrator"
    change: str                    # raised, decayed, set, expired
    level: int
    previous: int | None
    what: str
    signals: tuple[str, ...] = ()
    decisions: tuple[str, ...] = ()
    event: str | None = None       # the log record; None for a computed step
    by: str | None = None

    @property
    def level_name(self) -> str:
        return risk_name(self.level)


@dataclass(frozen=True, slots=True)
class RiskHistory:
    """The rows (newest first) and the chart's points: ``[at, behaviour, administrator,
    what moved it]``."""

    rows: list[HistoryRow] = field(default_factory=list)
    points: list[list[Any]] = field(default_factory=list)


def risk_history(events: Sequence[Mapping[str, Any]], now: datetime) -> RiskHistory:
    """A principal's risk over time from its ``context.risk.*`` events (any order).

    The behaviour monitor records each decay step when it comes due, but only while
    the PDP that raised the level runs; the steps a raise scheduled (its ``decays``)
    that came due before ``now`` and before the next raise are therefore added as
    computed rows where the log has none. An administrator's level that expired
    likewise gets a row at its end.
    """
    ordered = sorted(events, key=lambda r: normalize_ts(r["timestamp"]))
    rows: list[HistoryRow] = []
    auto = [r for r in ordered if r.get("event") == "context.risk.auto"]
    manual = [r for r in ordered if r.get("event") == "context.risk.set"]
    now_ts = normalize_ts(now)
    for i, record in enumerate(auto):
        d = record.get("detail") or {}
        at = normalize_ts(record["timestamp"])
        change = str(d.get("change", "raised"))
        rows.append(HistoryRow(
            at=at, source="behaviour", change=change, level=int(d.get("level", 0)),
            previous=d.get("previous_level"), what=str(d.get("summary", "")),
            signals=tuple(d.get("signals") or ()), decisions=tuple(d.get("decisions") or ()),
            event=record.get("decision_id")))
        if change != "raised":
            continue
        nxt = next((normalize_ts(r["timestamp"]) for r in auto[i + 1:]
                    if (r.get("detail") or {}).get("change") == "raised"), None)
        recorded = {int((r.get("detail") or {}).get("level", -1)) for r in auto[i + 1:]
                    if (r.get("detail") or {}).get("change") == "decayed"
                    and (nxt is None or normalize_ts(r["timestamp"]) < nxt)}
        for step in d.get("decays") or []:
            step_at = normalize_ts(step["at"])
            if step_at > now_ts or (nxt is not None and step_at >= nxt) \
                    or int(step["level"]) in recorded:
                continue
            rows.append(HistoryRow(at=step_at, source="behaviour", change="decayed",
                                   level=int(step["level"]), previous=int(step["level"]) + 1,
                                   what=f"decayed ({d.get('decay_s', '?')} s per level)"))
    for i, record in enumerate(manual):
        d = record.get("detail") or {}
        at = normalize_ts(record["timestamp"])
        rows.append(HistoryRow(at=at, source="administrator", change="set",
                               level=int(d.get("level", 0)), previous=d.get("previous_level"),
                               what=str(d.get("reason") or ""), event=record.get("decision_id"),
                               by=record.get("principal")))
        ends = d.get("expires_at")
        nxt = normalize_ts(manual[i + 1]["timestamp"]) if i + 1 < len(manual) else None
        if ends and int(d.get("level", 0)) > 0:
            end_ts = normalize_ts(ends)
            if end_ts <= now_ts and (nxt is None or end_ts < nxt):
                rows.append(HistoryRow(at=end_ts, source="administrator", change="expired",
                                       level=0, previous=int(d.get("level", 0)),
                                       what="the administrator's level expired"))
    rows.sort(key=lambda r: (r.at, r.source))
    points: list[list[Any]] = []
    levels = {"behaviour": 0, "administrator": 0}
    for row in rows:
        levels[row.source] = row.level
        points.append([row.at, levels["behaviour"], levels["administrator"],
                       f"{row.source} {row.change}: {row.what}"])
    if points:
        points.append([now_ts, levels["behaviour"], levels["administrator"], "now"])
    rows.reverse()
    return RiskHistory(rows=rows, points=points)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


__all__ = ["HistoryRow", "IncidentView", "RiskHistory", "RiskPart", "RiskRow",
           "business_hours", "incident_views", "risk_history", "risk_part", "risk_rows", "when"]
