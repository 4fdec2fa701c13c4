"""The history of live context, read back from the decision log: incidents and risk.

Every change to live context is already an administrative event in the log's
hash chain, recorded before (or, for a change that makes decisions stricter,
right after) it takes effect — so the history is as durable as the log, survives
restarts, is shared by every replica, and needs no second copy:

==========================  ===========================================  ====================
event                       ``detail``                                   record ``principal``
==========================  ===========================================  ====================
``context.incident.set``    ``{"incident": {id, scope, level, ...}}``     who declared it
``context.incident.clear``  ``{"incidents": [{id, ...}, ...]}``            who ended them
``context.risk.set``        ``{"principal", "level", "previous_level",    the administrator
                            "reason", "expires_at"}`` (principal None:
                            the global level)
``context.risk.auto``       ``{"change": "raised"|"decayed",              None (the PDP)
                            "principal", "level", "summary", "evidence",
                            "signals", "decisions", "decays"}``
==========================  ===========================================  ====================

:func:`admin_events` finds them by SQL: administrative events are the rows whose
``decision`` is NULL, so the log's ``(decision, ts)`` index narrows a time range to
them, and the event name (and the subject principal) are read from the record's
JSON only for those rows. The in-memory store is read in Python. Bounded: at most
``limit`` events, newest first.

:func:`incidents` folds the incident events into one :class:`PastIncident` each
(declared when, by whom, ended when, by whom) — the window an auditor then
searches for the decisions denied during it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pdp.audit.records import normalize_ts
from pdp.audit.rollups import store_connection

INCIDENT_EVENTS = ("context.incident.set", "context.incident.clear")
RISK_EVENTS = ("context.risk.auto", "context.risk.set")
MAX_EVENTS = 1000
"""The most events one call reads."""


def admin_events(store: Any, events: Sequence[str], *, since: str, until: str,
                 subject: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """Administrative events named ``events`` in ``[since, until)``, newest first.

    ``subject``: only those whose ``detail.principal`` is it (a principal's risk).
    Raises ``ValueError`` for a bad range or limit; the store's own errors otherwise.
    """
    since, until = normalize_ts(since), normalize_ts(until)
    if not events or not 1 <= limit <= MAX_EVENTS:
        raise ValueError(f"name at least one event and a limit of 1..{MAX_EVENTS}")
    with store_connection(store) as found:
        if found is None:
            return _from_records(store.iter_all(), events, since, until, subject, limit)
        conn, dialect = found
        p = "?" if dialect == "sqlite" else "%s"
        if dialect == "sqlite":
            event, principal = ("json_extract(record, '$.event')",
                                "json_extract(record, '$.detail.principal')")
        else:
            event, principal = ("(record::jsonb ->> 'event')",
                                "(record::jsonb -> 'detail' ->> 'principal')")
        where = (f"decision IS NULL AND ts >= {p} AND ts < {p} AND kind = 'admin' "
                 f"AND {event} IN ({', '.join([p] * len(events))})")
        params: list[Any] = [since, until, *events]
        if subject is not None:
            where += f" AND {principal} = {p}"
            params.append(subject)
        rows = conn.execute(f"SELECT record FROM decisions WHERE {where} "
                            f"ORDER BY ts DESC LIMIT {int(limit)}", params).fetchall()
    return [json.loads(r[0]) for r in rows]


def _from_records(records: Any, events: Sequence[str], since: str, until: str,
                  subject: str | None, limit: int) -> list[dict[str, Any]]:
    """The same selection over records in Python (the in-memory store, tests)."""
    out = []
    for record in records:
        if record.get("kind") != "admin" or record.get("event") not in events:
            continue
        ts = normalize_ts(record["timestamp"])
        if not since <= ts < until:
            continue
        detail = record.get("detail") or {}
        if subject is not None and detail.get("principal") != subject:
            continue
        out.append(record)
    out.sort(key=lambda r: normalize_ts(r["timestamp"]), reverse=True)
    return out[:limit]


@dataclass(frozen=True, slots=True)
class PastIncident:
    """One incident as the log tells it: declared, and ended (by someone or by its end time)."""

    id: str
    scope: str
    level: int
    level_name: str
    reason: str
    declared_at: str
    declared_by: str | None
    declared_event: str | None = None   # the log record of the declaration
    ends_at: str | None = None          # the end it was declared with, if any
    ended_at: str | None = None         # when someone ended it
    ended_by: str | None = None
    ended_event: str | None = None

    def end(self, now: datetime) -> str | None:
        """When it ended (by hand or at its end time), None while in force at ``now``."""
        if self.ended_at is not None:
            return self.ended_at
        if self.ends_at is not None and normalize_ts(self.ends_at) <= normalize_ts(now):
            return normalize_ts(self.ends_at)
        return None

    def window(self, now: datetime) -> tuple[str, str]:
        """``[since, until)`` of the decisions made while it was in force (until ``now``)."""
        return normalize_ts(self.declared_at), self.end(now) or normalize_ts(now)


def incidents(store: Any, *, since: str, until: str,
              limit: int = 200) -> list[PastIncident]:
    """Incidents declared or ended in ``[since, until)``, the newest declaration first."""
    found: dict[str, PastIncident] = {}
    ended: dict[str, dict[str, Any]] = {}
    for record in reversed(admin_events(store, INCIDENT_EVENTS, since=since, until=until,
                                        limit=MAX_EVENTS)):  # oldest first
        detail = record.get("detail") or {}
        if record.get("event") == "context.incident.set":
            d = detail.get("incident") or {}
            if isinstance(d, dict) and d.get("id"):
                found[str(d["id"])] = _incident(d, declared_event=record.get("decision_id"))
        else:
            for d in detail.get("incidents") or []:
                if isinstance(d, dict) and d.get("id"):
                    iid = str(d["id"])
                    found.setdefault(iid, _incident(d, declared_event=None))
                    ended[iid] = {"ended_at": normalize_ts(record["timestamp"]),
                                  "ended_by": record.get("principal"),
                                  "ended_event": record.get("decision_id")}
    out = []
    for iid, incident in found.items():
        e = ended.get(iid)
        if e is not None:
            incident = PastIncident(**{**_fields(incident), **e})
        out.append(incident)
    out.sort(key=lambda i: (normalize_ts(i.declared_at), i.id), reverse=True)
    return out[:limit]


def _incident(d: dict[str, Any], *, declared_event: str | None) -> PastIncident:
    level = int(d.get("level") or 0)
    return PastIncident(
        id=str(d["id"]), scope=str(d.get("scope", "global")), level=level,
        level_name=str(d.get("level_name") or level), reason=str(d.get("reason") or ""),
        declared_at=normalize_ts(d["set_at"]), declared_by=d.get("set_by"),
        declared_event=declared_event, ends_at=d.get("ends_at"))


def _fields(incident: PastIncident) -> dict[str, Any]:
    return {name: getattr(incident, name) for name in PastIncident.__slots__}


__all__ = ["INCIDENT_EVENTS", "MAX_EVENTS", "RISK_EVENTS", "PastIncident", "admin_events",
           "incidents"]
