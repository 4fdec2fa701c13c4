"""Aggregates of the decision log for the console's overview, computed by the store.

The charts never load records into Python: each figure is one ``GROUP BY``
over the indexed columns of ``decisions``, restricted to the filter's time
range. This module holds all that SQL for both dialects (SQLite and
PostgreSQL) and takes a connection, so the stores themselves stay as they are;
:func:`overview` picks the connection from the store it is given.

Indexes: :data:`INDEXES` adds ``decisions_ts_decision (ts, decision, kind)``,
which covers the over-time and deny-rate figures (an index-only range scan), and
``decisions_deny_rollup (decision, ts, kind, principal, reason_codes)``, which covers
the top deny reasons and denied principals. Both grow only at their right edges
(``ts`` rises, ``decision`` has two values), so an append touches few pages.
:func:`ensure_indexes` creates them if missing (``CREATE INDEX IF NOT
EXISTS``: idempotent, safe for several processes).

Ranges bucketed by hour or day (longer than two hours) read their whole hours
from the hourly rollup of :mod:`pdp.audit.hourly_rollup` — a derived table caught
up from the log before the read, never in the append path — and only the partial
hours at the edges (and records past the rollup's watermark) from the rows, so a
month costs about as much as a day. A rollup that is missing, stale or damaged is
rebuilt by the next catch-up and, until then, not read: the rows answer instead.

Decision latency percentiles read ``latency_us`` inside the record, so they are
computed over the newest :data:`LATENCY_SAMPLE` decisions of the range (said on
the page), not the whole range: JSON is parsed for 1,000 rows, never for a million.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pdp.audit import hourly_rollup, rollup_check
from pdp.audit.chain.spool import SpoolingLog
from pdp.audit.query import DecisionFilter, matches
from pdp.audit.records import columns_of, normalize_ts
from pdp.audit.sqlite.log import SqliteDecisionLog
from pdp.audit.sqlite.schema import connect

Dialect = Literal["sqlite", "postgres"]
log = logging.getLogger(__name__)

INDEXES = (
    "CREATE INDEX IF NOT EXISTS decisions_ts_decision ON decisions (ts, decision, kind)",
    "CREATE INDEX IF NOT EXISTS decisions_deny_rollup ON decisions "
    "(decision, ts, kind, principal, reason_codes)",
)
LATENCY_SAMPLE = 1000
CATCH_UP_AFTER = 4096
"""Records past the rollup's watermark before a read catches it up; the read scans them
(by ``seq``) meanwhile."""
TOP_N = 10

BUCKETS: tuple[tuple[timedelta, int], ...] = (
    (timedelta(hours=2), 16),         # span up to 2 h: minutes (prefix 16 = YYYY-MM-DDTHH:MM)
    (timedelta(days=3), 13),          # up to 3 days: hours
)
"""Bucket width by the span of the range: the length of the ``ts`` prefix grouped on;
longer spans are grouped by day (prefix 10)."""


@dataclass(frozen=True, slots=True)
class Bucket:
    """Decisions in one time bucket; ``start``/``end`` bound it (ISO 8601, end exclusive)."""

    start: str
    end: str
    allow: int
    deny: int


@dataclass(frozen=True, slots=True)
class Overview:
    """What the overview page draws, for the range ``since``..``until``."""

    since: str
    until: str
    total: int
    denies: int
    buckets: list[Bucket] = field(default_factory=list)
    top_reasons: list[tuple[str, int]] = field(default_factory=list)
    top_denied: list[tuple[str, int]] = field(default_factory=list)
    latency_us: dict[str, int | None] = field(default_factory=dict)
    latency_sample: int = 0

    @property
    def deny_rate(self) -> float:
        return self.denies / self.total if self.total else 0.0


def bucket_prefix(since: str, until: str) -> int:
    """How many leading characters of ``ts`` name a bucket for this range."""
    span = _parse(until) - _parse(since)
    return next((prefix for limit, prefix in BUCKETS if span <= limit), 10)


def bucket_end(start: str, prefix: int) -> str:
    """The exclusive end of the bucket starting at ``start`` (a ``ts`` prefix)."""
    begin = _parse(_pad(start))
    step = {16: timedelta(minutes=1), 13: timedelta(hours=1)}.get(prefix, timedelta(days=1))
    return normalize_ts(begin + step)


def ensure_indexes(conn: Any) -> None:
    """Create the rollup indexes if missing (a write: call with a writing connection)."""
    for statement in INDEXES:
        conn.execute(statement)


def overview_sql(conn: Any, dialect: Dialect, since: str, until: str) -> Overview:
    """The overview of ``[since, until)`` by SQL on ``conn`` (decision records only)."""
    p = "?" if dialect == "sqlite" else "%s"
    prefix = bucket_prefix(since, until)
    where = f"ts >= {p} AND ts < {p} AND kind = 'decision'"
    rows = conn.execute(
        f"SELECT substr(ts, 1, {prefix}) AS b, decision, count(*) FROM decisions "
        f"WHERE {where} GROUP BY 1, 2", (since, until)).fetchall()  # sorted below
    counts: dict[str, dict[str, int]] = {}
    for b, decision, n in rows:
        counts.setdefault(b, {"allow": 0, "deny": 0})[decision if decision == "allow"
                                                     else "deny"] += int(n)
    buckets = [Bucket(_pad(b), bucket_end(b, prefix), c["allow"], c["deny"])
               for b, c in sorted(counts.items())]
    deny_where = f"decision = 'deny' AND ts >= {p} AND ts < {p} AND kind = 'decision'"
    if dialect == "sqlite":
        reasons = conn.execute(
            "SELECT j.value, count(*) FROM decisions, json_each(decisions.reason_codes) AS j "
            f"WHERE {deny_where} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {TOP_N}",
            (since, until)).fetchall()
        latency_expr = "json_extract(record, '$.latency_us')"
    else:
        reasons = conn.execute(
            "SELECT code, count(*) FROM decisions, unnest(reason_codes) AS code "
            f"WHERE {deny_where} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {TOP_N}",
            (since, until)).fetchall()
        latency_expr = "(record::jsonb ->> 'latency_us')::bigint"
    denied = conn.execute(
        f"SELECT principal, count(*) FROM decisions WHERE {deny_where} "
        f"AND principal IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {TOP_N}",
        (since, until)).fetchall()
    sample = [int(r[0]) for r in conn.execute(
        f"SELECT {latency_expr} FROM decisions WHERE {where} ORDER BY ts DESC "
        f"LIMIT {LATENCY_SAMPLE}", (since, until)).fetchall() if r[0] is not None]
    total = sum(b.allow + b.deny for b in buckets)
    return Overview(since=since, until=until, total=total,
                    denies=sum(b.deny for b in buckets), buckets=buckets,
                    top_reasons=[(str(c), int(n)) for c, n in reasons],
                    top_denied=[(str(c), int(n)) for c, n in denied],
                    latency_us=percentiles(sample), latency_sample=len(sample))


def overview_records(records: Iterator[dict[str, Any]], since: str, until: str) -> Overview:
    """The same overview from records in Python: for the in-memory store (tests, ``--dev``
    without a file) and as the reference the SQL is tested against."""
    prefix = bucket_prefix(since, until)
    flt = DecisionFilter(since=since, until=until, kind="decision")
    counts: dict[str, dict[str, int]] = {}
    reasons: Counter[str] = Counter()
    denied: Counter[str] = Counter()
    latencies: list[tuple[str, int]] = []
    for record in records:
        try:
            col = columns_of(record)
        except ValueError:
            continue
        if not matches(flt, col):
            continue
        outcome = "allow" if col.decision == "allow" else "deny"
        counts.setdefault(col.ts[:prefix], {"allow": 0, "deny": 0})[outcome] += 1
        if col.decision == "deny":
            reasons.update(col.reason_codes)
            if col.principal is not None:
                denied[col.principal] += 1
        latency = record.get("latency_us")
        if isinstance(latency, int):
            latencies.append((col.ts, latency))
    buckets = [Bucket(_pad(b), bucket_end(b, prefix), c["allow"], c["deny"])
               for b, c in sorted(counts.items())]
    newest = [v for _, v in sorted(latencies, reverse=True)[:LATENCY_SAMPLE]]
    return Overview(since=since, until=until, total=sum(b.allow + b.deny for b in buckets),
                    denies=sum(b.deny for b in buckets), buckets=buckets,
                    top_reasons=_top(reasons), top_denied=_top(denied),
                    latency_us=percentiles(newest), latency_sample=len(newest))


def _top(counter: Counter[str]) -> list[tuple[str, int]]:
    """The :data:`TOP_N` largest counts, ties by name (the SQL's ``ORDER BY 2 DESC, 1``)."""
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_N]


def percentiles(values: Sequence[int]) -> dict[str, int | None]:
    """p50, p90 and p99 (nearest rank) of ``values``; None each when there are none."""
    ordered = sorted(values)
    out: dict[str, int | None] = {}
    for name, q in (("p50", 0.50), ("p90", 0.90), ("p99", 0.99)):
        out[name] = ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None
    return out


@contextmanager
def store_connection(store: Any) -> Iterator[tuple[Any, Dialect] | None]:
    """A reading connection to ``store`` and its dialect; None for a store without SQL.

    A spooling log (``[audit] spool_path``) is read through the store it wraps: records
    still in its spool are not in the figures until shipped, as they are not in a search.
    """
    if isinstance(store, SpoolingLog):
        store = store.store
    if isinstance(store, SqliteDecisionLog):
        conn = connect(store.path, busy_timeout_ms=store.busy_timeout_ms)
        try:
            yield conn, "sqlite"
        finally:
            conn.close()
    elif _is_postgres(store):
        with store._own_connection() as pg:
            yield pg, "postgres"
    else:
        yield None


def overview(store: Any, since: str, until: str) -> Overview:
    """The overview of ``[since, until)`` from any decision store.

    Ranges bucketed by hour or day read their whole hours from the hourly rollup
    (:mod:`pdp.audit.hourly_rollup`, caught up first) and only the partial hours at
    the edges, and the records past the rollup's watermark, from the rows.
    """
    since, until = normalize_ts(since), normalize_ts(until)
    if until <= since:
        raise ValueError("until must be after since")
    prefix = bucket_prefix(since, until)
    if prefix < 16:
        _catch_up_if_behind(store)
    with store_connection(store) as found:
        if found is None:
            return overview_records(store.iter_all(), since, until)
        conn, dialect = found
        if prefix == 16:
            return overview_sql(conn, dialect, since, until)
        with _snapshot(conn, dialect):
            parts = _rollup_backed(conn, dialect, since, until, prefix, tops=True)
            if parts is None:
                return overview_sql(conn, dialect, since, until)
            p = "?" if dialect == "sqlite" else "%s"
            latency_expr = ("json_extract(record, '$.latency_us')" if dialect == "sqlite"
                            else "(record::jsonb ->> 'latency_us')::bigint")
            sample = [int(r[0]) for r in conn.execute(
                f"SELECT {latency_expr} FROM decisions WHERE ts >= {p} AND ts < {p} "
                f"AND kind = 'decision' ORDER BY ts DESC LIMIT {LATENCY_SAMPLE}",
                (since, until)).fetchall() if r[0] is not None]
    buckets = [Bucket(_pad(b), bucket_end(b, prefix), c["allow"], c["deny"])
               for b, c in sorted(parts.buckets.items())]
    return Overview(since=since, until=until, total=sum(b.allow + b.deny for b in buckets),
                    denies=sum(b.deny for b in buckets), buckets=buckets,
                    top_reasons=_top(parts.reasons), top_denied=_top(parts.denied),
                    latency_us=percentiles(sample), latency_sample=len(sample))


def _rollup_backed(conn: Any, dialect: Dialect, since: str, until: str, prefix: int,
                   tops: bool) -> hourly_rollup.Parts | None:
    """The counts of ``[since, until)``: whole hours from the rollup, the partial hours
    at the edges and the records past the watermark from the rows. None when the range
    holds no whole hour or the rollup does not describe the log (read rows instead)."""
    first_hour = _hour_ceil(since)
    end_hour = until[:hourly_rollup.HOUR]
    if first_hour >= end_hour:
        return None
    bounds = hourly_rollup.log_bounds(conn)
    state = hourly_rollup.read_state(conn, dialect)
    if state is None or not hourly_rollup.usable(state, *bounds):
        return None
    p = "?" if dialect == "sqlite" else "%s"
    plus = "+" if dialect == "sqlite" else ""  # the tail: walk its seq range (row_parts)
    a, b = _pad(first_hour), _pad(end_hour)
    parts = hourly_rollup.rollup_parts(conn, dialect, first_hour, end_hour, prefix, tops)
    for where, params in ((f"ts >= {p} AND ts < {p}", (since, a)),
                          (f"ts >= {p} AND ts < {p}", (b, until)),
                          (f"seq > {p} AND seq <= {p} AND {plus}ts >= {p} AND {plus}ts < {p}",
                           (state.through_seq, bounds[1], a, b))):
        parts.merge(hourly_rollup.row_parts(conn, dialect, where, params, prefix, tops,
                                            by_seq=where.startswith("seq")))
    return parts


def _catch_up_if_behind(store: Any) -> None:
    """Catch the rollup up when it is unusable or more than :data:`CATCH_UP_AFTER` records
    behind. Not on every read: a catch-up takes the log's write lock, which the appends
    (the console's own ``audit.query`` records among them) hold often."""
    with store_connection(store) as found:
        if found is None:
            return
        conn, dialect = found
        first, head = hourly_rollup.log_bounds(conn)
        state = hourly_rollup.read_state(conn, dialect)
    if (state is None or not hourly_rollup.usable(state, first, head)
            or head - state.through_seq > CATCH_UP_AFTER):
        catch_up_store(store)


def _hour_ceil(ts: str) -> str:
    """The first whole hour at or after ``ts`` (a normalized timestamp), as ``YYYY-MM-DDTHH``."""
    hour = ts[:hourly_rollup.HOUR]
    if _pad(hour) == ts:
        return hour
    return normalize_ts(_parse(_pad(hour)) + timedelta(hours=1))[:hourly_rollup.HOUR]


@contextmanager
def _snapshot(conn: Any, dialect: Dialect) -> Iterator[None]:
    """One read transaction, so the rollup's watermark and the rows agree."""
    conn.execute("BEGIN" if dialect == "sqlite" else "BEGIN ISOLATION LEVEL REPEATABLE READ")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")  # read only: nothing to keep


def catch_up_store(store: Any) -> None:
    """Catch the hourly rollup of ``store`` up with its log (a no-op without SQL).

    A failure (the log busy, read-only, unreachable) is logged and ignored: the
    overview stays exact, reading the records past the watermark from the rows.
    """
    try:
        if isinstance(store, SqliteDecisionLog):
            conn = connect(store.path, busy_timeout_ms=store.busy_timeout_ms, writer=True)
            try:
                hourly_rollup.catch_up(conn, "sqlite")
            finally:
                conn.close()
        elif _is_postgres(store):
            with store._own_connection() as pg:
                hourly_rollup.catch_up(pg, "postgres")
    except Exception as exc:  # noqa: BLE001 - derived data: a failure costs speed only
        log.warning("overview rollup: catch-up failed, reading rows instead: %s", exc)


def check_store(store: Any) -> rollup_check.RollupReport | None:
    """Compare the hourly rollup of ``store`` with its rows (:func:`pdp.audit.rollup_check.check`),
    in one read snapshot; None for a store without SQL (no rollup to check)."""
    with store_connection(store) as found:
        if found is None:
            return None
        conn, dialect = found
        with _snapshot(conn, dialect):
            return rollup_check.check(conn, dialect)


def rebuild_store(store: Any) -> hourly_rollup.State | None:
    """Recount the hourly rollup of ``store`` from its rows (the repair of an edited
    rollup); None for a store without SQL. Unlike :func:`catch_up_store` a failure
    raises: the caller asked for the repair and must hear that it did not happen."""
    if isinstance(store, SpoolingLog):
        store = store.store
    if isinstance(store, SqliteDecisionLog):
        conn = connect(store.path, busy_timeout_ms=store.busy_timeout_ms, writer=True)
        try:
            return hourly_rollup.catch_up(conn, "sqlite", rebuild=True)
        finally:
            conn.close()
    if _is_postgres(store):
        with store._own_connection() as pg:
            return hourly_rollup.catch_up(pg, "postgres", rebuild=True)
    return None


def prepare_store(store: Any) -> None:
    """Create the rollup indexes on ``store`` (a no-op for a store without SQL)."""
    if isinstance(store, SqliteDecisionLog):
        conn = connect(store.path, busy_timeout_ms=store.busy_timeout_ms, writer=True)
        try:
            ensure_indexes(conn)
            hourly_rollup.catch_up(conn, "sqlite")
        finally:
            conn.close()
    elif _is_postgres(store):
        with store._own_connection() as pg:
            ensure_indexes(pg)
            pg.commit()
            hourly_rollup.catch_up(pg, "postgres")


def _is_postgres(store: Any) -> bool:
    """Whether ``store`` is the PostgreSQL log, without importing psycopg (the postgres
    extra, ~0.3 s of every start) when no PostgreSQL log was made: one exists only once
    its module is imported."""
    module = sys.modules.get("pdp.audit.postgres.log")
    return module is not None and isinstance(store, module.PostgresDecisionLog)


def counts(store: Any, since: str, until: str) -> tuple[int, int]:
    """``(decisions, denies)`` in ``[since, until)``: the counts beside a search (one
    ``GROUP BY decision`` over the covering index, without the overview's top lists)."""
    since, until = normalize_ts(since), normalize_ts(until)
    if bucket_prefix(since, until) < 16:
        _catch_up_if_behind(store)
    with store_connection(store) as found:
        if found is None:
            ov = overview_records(store.iter_all(), since, until)
            return ov.total, ov.denies
        conn, dialect = found
        prefix = bucket_prefix(since, until)
        if prefix < 16:
            with _snapshot(conn, dialect):
                parts = _rollup_backed(conn, dialect, since, until, prefix, tops=False)
            if parts is not None:
                total = sum(c["allow"] + c["deny"] for c in parts.buckets.values())
                return total, sum(c["deny"] for c in parts.buckets.values())
        p = "?" if dialect == "sqlite" else "%s"
        rows = conn.execute(
            f"SELECT decision, count(*) FROM decisions WHERE ts >= {p} AND ts < {p} "
            "AND kind = 'decision' GROUP BY 1", (since, until)).fetchall()
    total = sum(int(n) for _, n in rows)
    return total, total - sum(int(n) for d, n in rows if d == "allow")


def policy_hits(store: Any, since: str, until: str) -> dict[str, int]:
    """How many decisions of ``[since, until)`` each policy determined (policy coverage
    from traffic: a policy absent here never fired)."""
    since, until = normalize_ts(since), normalize_ts(until)
    with store_connection(store) as found:
        if found is None:
            hits: Counter[str] = Counter()
            flt = DecisionFilter(since=since, until=until, kind="decision")
            for record in store.iter_all():
                col = columns_of(record)
                if matches(flt, col):
                    hits.update(col.policies)
            return dict(hits)
        conn, dialect = found
        each = ("json_each(decisions.policies) AS j" if dialect == "sqlite"
                else "unnest(policies) AS j(value)")
        p = "?" if dialect == "sqlite" else "%s"
        rows = conn.execute(
            f"SELECT j.value, count(*) FROM decisions, {each} WHERE ts >= {p} AND ts < {p} "
            "AND kind = 'decision' GROUP BY 1", (since, until)).fetchall()
        return {str(pid): int(n) for pid, n in rows}

def _pad(prefix: str) -> str:
    """A ``ts`` prefix as a full timestamp (the bucket's start)."""
    full = "0000-01-01T00:00:00.000000Z"
    if len(prefix) == 10:
        prefix += "T"
    return prefix + full[len(prefix):]


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(UTC)


def dumps(ov: Overview) -> str:
    """The chart data as JSON for the page (``<script type="application/json">``)."""
    return json.dumps({"buckets": [[b.start, b.end, b.allow, b.deny] for b in ov.buckets]})


__all__ = ["BUCKETS", "CATCH_UP_AFTER", "INDEXES", "LATENCY_SAMPLE", "Bucket", "Dialect",
           "Overview", "bucket_prefix", "catch_up_store", "check_store", "counts", "dumps",
           "ensure_indexes",
           "overview", "overview_records", "overview_sql", "percentiles", "policy_hits",
           "prepare_store", "rebuild_store", "store_connection"]
