"""Decision-log benchmarks: append throughput (SQLite, PostgreSQL) and auditor queries.

``python -m bench audit`` runs this section alone and rewrites its part of
bench/RESULTS.md.

Throughput: ``RECORDS`` realistic decision records (about 1.5 KB of JSON,
shaped like ``pdp.decision.record``, UUIDv7 ids as ``decide()`` makes them)
are appended through the store's async ``append()`` by ``PRODUCERS``
concurrent tasks, as request handlers do: each record is validated,
serialized once, chained (SHA-256 over the previous hash and its stored
text), group-committed, indexed and acknowledged. Baselines, in the same
run, in transactions of ``BATCH`` rows, the same durability setting, no
chain, no event loop:

- *plain batched inserts*: the same rows built beforehand, ``executemany``'d
  into a table with its primary key only: SQLite alone (serializing with
  orjson inside the loop measures the same). The issue's target, 30,000
  records/s where plain batched inserts reach 60,000-80,000/s, is also read
  as a share of this: 0.375-0.5 (machines here differ 2-3x between days);
- *the log's own schema*: the same rows into the same table and indexes (the
  principal index left unfilled): what the database alone costs for this
  layout;
- *a plain logger*: each batch made into rows in the loop with
  ``json.dumps`` (id, timestamp, principal, record) into a bare table, as
  a logger without any of this would.

Each figure is the median of ``ROUNDS`` rounds on fresh files/schemas.

Queries: one SQLite log of 1,000,000 records (200 principals over 30 days)
is built once in a temporary directory with bulk inserts of chained rows,
then ``query(DecisionFilter(principal=..., since=..., until=...), limit=100)``
runs for random principals and windows; p50/p95 over ``QUERIES`` calls. The
baseline is the same query made to skip the indexes (``NOT INDEXED``).
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import random
import secrets
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uuid_utils

from bench.harness import machine, record
from pdp.api.app import collect_young_less_often
from pdp.audit import DecisionFilter, SqliteDecisionLog
from pdp.audit.chain.groupcommit import Append
from pdp.audit.chain.hashchain import GENESIS
from pdp.audit.records import COLUMNS, prepare
from pdp.audit.sqlite.pages import page_sql, where_clause
from pdp.audit.sqlite.principal_index import INDEX_EVERY, catch_up
from pdp.audit.sqlite.schema import INSERT, ROW, connect

RECORDS = 60_000
PRODUCERS = (256, 1024)  # concurrent request handlers: more in flight, larger commits
BATCH = 512
ROUNDS = 3
QUERY_RECORDS = 1_000_000
PRINCIPALS = 200
SPAN = timedelta(days=30)
QUERIES = 200
T0 = datetime(2026, 10, 1, tzinfo=UTC)
PG_DSN = os.environ.get("PDP_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def make_record(i: int, *, ts: datetime | None = None, principal: str | None = None,
                decision_id: str | None = None) -> dict[str, Any]:
    """A decision record shaped like pdp.decision.record.decision_record's."""
    ts = ts or T0 + timedelta(milliseconds=i)
    principal = principal or f"spiffe://example.org/services/s{i % PRINCIPALS}"
    allow = i % 3 != 0
    return {
        "decision_id": decision_id or str(uuid_utils.uuid7()),
        "kind": "decision", "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "instance": "pdp-1:4242", "request_id": f"req-{i}", "pep": "gateway",
        "principal": principal,
        "credential": {"issuer": "spiffe://example.org", "kind": "jwt-svid", "jti": f"j-{i}",
                       "serial": None, "sha256": "ab" * 32,
                       "issued_at": "2026-10-01T11:59:00+00:00",
                       "expires_at": "2026-10-01T12:04:00+00:00", "trust_domain": "example.org",
                       "scopes": ["datasets:read"], "groups": [], "actor": None,
                       "actor_chain": [], "flags": []},
        "action": 'App::Action::"read"', "resource": f'App::Dataset::"d{i % 50}"',
        "request": {"action": "read", "resource": {"type": "App::Dataset", "id": f"d{i % 50}",
                                                   "attrs": None, "parents": []},
                    "context": {"ip": "10.0.0.1"}},
        "live": {"now": "2026-10-01T12:00:00Z", "incident": False, "risk_level": 0,
                 "business_hours": True},
        "policy_version": {"commit": "c0ffee" * 6, "sha256": "cd" * 32, "dirty": False,
                           "label": "c0ffee1"},
        "decision": "allow" if allow else "deny",
        "reasons": [{"policy": "dataset.pipelines.read-write" if allow else "guard.incident",
                     "effect": "permit" if allow else "forbid",
                     "message": "Data pipelines may read and write datasets of the analytics "
                                "domain."}],
        "reason_codes": ["policy.permit" if allow else "policy.forbid"], "errors": [],
        "explanation": "Allowed by policy dataset.pipelines.read-write: Data pipelines may read "
                       "and write datasets of the analytics domain.",
        "valid_until": "2026-10-01T12:04:00+00:00", "latency_us": 120,
    }


# -- throughput -------------------------------------------------------------------

class Rate:
    """A run's records per second, and the process CPU it used per record (all threads)."""

    def __init__(self, n: int, wall: float, cpu: float) -> None:
        self.per_s = n / wall
        self.cpu_us = cpu / n * 1e6


def timed(n: int, fn: Callable[[], object]) -> Rate:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return Rate(n, time.perf_counter() - wall, time.process_time() - cpu)


def append_throughput(log: Any, records: list[dict[str, Any]], producers: int) -> Rate:
    """Records per second through ``log.append`` from ``producers`` concurrent tasks."""
    async def producer(chunk: list[dict[str, Any]]) -> None:
        for r in chunk:
            await log.append(r)

    async def main() -> None:
        await asyncio.gather(*(producer(records[i::producers]) for i in range(producers)))

    return timed(len(records), lambda: asyncio.run(main()))


def plain_rows(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The same rows without a chain: columns, the record's JSON, no hashes."""
    rows = []
    for seq, r in enumerate(records, start=1):
        p = prepare(r)
        c = p.columns
        rows.append((seq, c.decision_id, c.kind, c.ts, c.principal, c.action, c.resource,
                     c.decision, c.pep, p.policies_json, p.reason_codes_json, p.body_json,
                     None, None))
    return rows


def plain_logger(path: Path, records: list[dict[str, Any]], synchronous: str) -> Rate:
    """A plain logger: each batch of records turned into rows in the loop, ``json.dumps``.

    The id, timestamp, principal and the record's JSON, ``executemany``'d in
    transactions of ``BATCH`` into a table with its primary key only: no chain,
    no index, no event loop. It measures what the issue quotes for plain
    batched inserts on this machine (60,000-80,000/s).
    """
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE decisions (seq INTEGER PRIMARY KEY, decision_id, ts, "
                     "principal, record)")

    def batch(i: int) -> list[tuple[Any, ...]]:
        return [(i + k, r["decision_id"], r["timestamp"], r["principal"], json.dumps(r))
                for k, r in enumerate(records[i:i + BATCH], start=1)]

    return batched_inserts(path, synchronous, "INSERT INTO decisions VALUES (?, ?, ?, ?, ?)",
                           len(records), batch)


def sqlite_baseline(path: Path, rows: list[tuple[Any, ...]], synchronous: str, *,
                    plain: bool = False) -> Rate:
    """``rows`` by ``executemany``: into the log's schema, or (``plain``) a bare table."""
    if plain:
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("CREATE TABLE decisions (seq INTEGER PRIMARY KEY, "
                         f"{', '.join(COLUMNS[1:])})")
    else:
        SqliteDecisionLog(path).close()  # the same schema and indexes
    return batched_inserts(path, synchronous, INSERT + ROW, len(rows),
                           lambda i: rows[i:i + BATCH])


def batched_inserts(path: Path, synchronous: str, sql: str, n: int,
                    batch: Callable[[int], list[tuple[Any, ...]]]) -> Rate:
    """``n`` rows by ``executemany``, ``BATCH`` per transaction (``batch(i)``: the rows from
    the i-th on, made inside the timed loop); the file is removed afterwards."""
    conn = connect(path, busy_timeout_ms=5000, synchronous=synchronous, writer=True)

    def insert() -> None:
        for i in range(0, n, BATCH):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, batch(i))
            conn.execute("COMMIT")

    rate = timed(n, insert)
    conn.close()
    remove_db(path)
    return rate


def remove_db(path: Path) -> None:
    """Delete a measured file at once: its dirty pages, written back by the kernel
    later, would otherwise slow whichever run comes next (noise on a shared disk)."""
    for suffix in ("", "-wal", "-shm", "-writer"):  # -writer: the appenders' turns
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def row(name: str, ours: Rate, batches: list[float], plain: Rate, schema: Rate,
        logger: Rate | None, target: bool) -> str:
    def ratio(base: Rate) -> str:  # floored: 0.496 shows as 0.49, never as a rounded-up 0.50
        return f"{math.floor(ours.per_s / base.per_s * 100) / 100:.2f}"

    verdict = "report"
    if target:
        share = ours.per_s / plain.per_s
        where = ("above" if share >= RATIO_RANGE[1] else
                 "inside" if share >= RATIO_RANGE[0] else "**below**")
        verdict = (f"≥ {TARGET_PER_S:,}/s: {'met' if ours.per_s >= TARGET_PER_S else '**not met**'}"
                   f"; ours / plain {where} {RATIO_RANGE[0]}–{RATIO_RANGE[1]}")
    logged = "– | –" if logger is None else f"{logger.per_s:,.0f} | {ratio(logger)}"
    return (f"| {name} | {ours.per_s:,.0f} | {ours.cpu_us:.0f} | {statistics.mean(batches):.0f} "
            f"| {plain.per_s:,.0f} | {ratio(plain)} | {verdict} "
            f"| {schema.per_s:,.0f} | {ratio(schema)} | {logged} |")


TARGET_PER_S = 30_000
"""The issue's target, on a machine where plain batched inserts reach 60,000-80,000/s."""
RATIO_RANGE = (0.375, 0.5)
"""The same target as a share of plain batched inserts: 30,000 of 80,000 up to 30,000 of
60,000. Machines here run 2-3x apart from one day to the next; the share does not."""


@contextmanager
def inputs_frozen() -> Iterator[None]:
    """Run with the collector set as ``pdp serve`` sets it, the prepared inputs frozen.

    ``pdp serve`` freezes what it built at start and collects young objects less
    often (``pdp.api.app``); a bench holding 60,000 ready records would otherwise
    also pay for walking them in every full collection, which a server never holds.
    """
    threshold = gc.get_threshold()
    collect_young_less_often()
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def sqlite_throughput(workdir: Path) -> list[str]:
    records = [make_record(i) for i in range(RECORDS)]
    rows = plain_rows(records)
    with inputs_frozen():
        return _sqlite_rows(workdir, records, rows)


def _sqlite_rows(workdir: Path, records: list[dict[str, Any]],
                 rows: list[tuple[Any, ...]]) -> list[str]:
    lines = []
    for synchronous, producers in (("FULL", 256), ("FULL", 1024), ("NORMAL", 1024)):
        batches: list[float] = []

        def ours() -> Rate:
            path = workdir / f"ours-{secrets.token_hex(4)}.db"
            log = SqliteDecisionLog(path, synchronous=synchronous, batch_max=BATCH)
            try:
                rate = append_throughput(log, records, producers)
                batches.append(log.appended / log.commits)
                assert log.appended == RECORDS
            finally:
                log.close()
                remove_db(path)
            return rate

        def base(plain: bool) -> Rate:
            return sqlite_baseline(workdir / f"base-{secrets.token_hex(4)}.db", rows,
                                   synchronous, plain=plain)

        def logger() -> Rate:
            return plain_logger(workdir / f"logger-{secrets.token_hex(4)}.db", records,
                                synchronous)

        rates = interleaved([ours, lambda: base(True), lambda: base(False), logger])
        lines.append(row(f"SQLite, synchronous={synchronous}, {producers} tasks", rates[0],
                         batches, *rates[1:], target=True))
        print(lines[-1], flush=True)
    return lines


def interleaved(runs: list[Callable[[], Rate]]) -> list[Rate]:
    """Each run's median round, the runs taking turns so that a noisy minute hits all alike."""
    rounds: list[list[Rate]] = [[] for _ in runs]
    for _ in range(ROUNDS):
        for taken, run in zip(rounds, runs):
            taken.append(run())
    return [sorted(taken, key=lambda r: r.per_s)[len(taken) // 2] for taken in rounds]


def postgres_throughput() -> list[str]:
    try:
        import psycopg
        from psycopg.conninfo import make_conninfo

        from pdp.audit.postgres import PostgresDecisionLog
        from pdp.audit.records import COLUMNS as PG_COLUMNS

        psycopg.connect(PG_DSN, connect_timeout=2).close()
    except Exception as exc:  # noqa: BLE001 - report, do not fail the other sections
        return [f"| PostgreSQL | not run: {exc} | | | | | | | | | |"]
    records = [make_record(i) for i in range(RECORDS // 2)]
    rows = [(*r[:9], list(prepare(rec).columns.policies),
             list(prepare(rec).columns.reason_codes), r[11], "", "")
            for r, rec in zip(plain_rows(records), records)]
    batches: list[float] = []

    def in_schema(fn: Callable[[str], Rate]) -> Rate:
        schema = f"pdp_bench_{secrets.token_hex(4)}"
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            return fn(make_conninfo(PG_DSN, options=f"-csearch_path={schema}"))
        finally:
            with psycopg.connect(PG_DSN, autocommit=True) as admin:
                admin.execute(f'DROP SCHEMA "{schema}" CASCADE')

    def ours(dsn: str) -> Rate:
        log = PostgresDecisionLog(dsn, batch_max=BATCH)
        try:
            rate = append_throughput(log, records, PRODUCERS[-1])
            batches.append(log.appended / log.commits)
        finally:
            log.close()
        return rate

    def base(dsn: str, plain: bool) -> Rate:
        PostgresDecisionLog(dsn).close()  # the same tables and indexes
        table = "decisions"
        with psycopg.connect(dsn, autocommit=True) as conn:
            if plain:  # the same columns, the primary key only
                table = "plain_decisions"
                conn.execute("CREATE TABLE plain_decisions (LIKE decisions)")
                conn.execute("ALTER TABLE plain_decisions ADD PRIMARY KEY (seq)")
        sql = (f"INSERT INTO {table} ({', '.join(PG_COLUMNS)}) "
               f"VALUES ({', '.join(['%s'] * len(PG_COLUMNS))})")
        with psycopg.connect(dsn) as conn:
            def insert() -> None:
                for i in range(0, len(rows), BATCH):
                    with conn.transaction(), conn.cursor() as cur:
                        cur.executemany(sql, rows[i:i + BATCH])

            return timed(len(rows), insert)

    with inputs_frozen():
        rates = interleaved([lambda: in_schema(ours),
                             lambda: in_schema(lambda d: base(d, True)),
                             lambda: in_schema(lambda d: base(d, False))])
    line = row(f"PostgreSQL 127.0.0.1, synchronous_commit=on, {PRODUCERS[-1]} tasks", rates[0],
               batches, rates[1], rates[2], None, target=False)
    print(line, flush=True)
    return [line]


# -- queries over 1,000,000 records ------------------------------------------------------

def build_query_log(path: Path, n: int | None = None) -> float:
    """A chained log of ``n`` records, bulk-inserted; returns the seconds it took."""
    start = time.perf_counter()
    SqliteDecisionLog(path).close()  # the log's schema; its indexes are rebuilt below
    conn = connect(path, busy_timeout_ms=5000, synchronous="OFF", writer=True)
    conn.execute("PRAGMA cache_size=-262144")  # 256 MiB while building
    indexes = [sql for (sql,) in conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'decisions' "
        "AND sql IS NOT NULL")]
    for statement in indexes:  # bulk load first, then build each index in one sorted pass
        conn.execute(f"DROP INDEX {statement.split()[2]}")
    log = SqliteDecisionLog.__new__(SqliteDecisionLog)  # only for its row layout
    n = QUERY_RECORDS if n is None else n
    step = SPAN / n
    rng = random.Random(5)
    seq, head = 0, GENESIS
    chunk = 20_000
    for base in range(0, n, chunk):
        items = [Append(prepare(make_record(
            i, ts=T0 + step * i,
            principal=f"spiffe://example.org/services/s{rng.randrange(PRINCIPALS)}",
            decision_id=f"{i:032x}")), None, None)  # type: ignore[arg-type]
            for i in range(base, min(n, base + chunk))]
        _, rows = log._chain(items, seq, head, None)  # noqa: SLF001 - the store's own sealing
        seq, head = rows[-1][0], rows[-1][-1]
        conn.execute("BEGIN")
        conn.executemany(INSERT + ROW, rows)
        conn.execute("COMMIT")
    for statement in indexes:
        conn.execute(statement)
    catch_up(conn)  # the principal index, as the writer fills it
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - start


def query_latencies(path: Path) -> list[str]:
    rng = random.Random(11)
    lines = []
    for label, window in (("1 day", timedelta(days=1)), ("7 days", timedelta(days=7)),
                          ("30 days (all of it)", SPAN)):
        filters = []
        for _ in range(QUERIES):
            since = T0 + (SPAN - window) * rng.random()
            filters.append(DecisionFilter(
                principal=f"spiffe://example.org/services/s{rng.randrange(PRINCIPALS)}",
                since=since, until=since + window))
        p50, p95, per_page = page_latencies(path, filters)
        base = unindexed_query_ms(path, filters[-1])
        lines.append(f"| principal + {label}, first page of 100 | {p50:.1f} | {p95:.1f} | "
                     f"{per_page:.0f} | {base:,.0f} | ≤ 50 (p50) |")
        print(lines[-1], flush=True)
    return lines


def tail_query_latencies(path: Path) -> str:
    """Principal queries over the last day while the newest records are not yet indexed.

    The writer indexes every ``INDEX_EVERY`` records, so up to that many (less one)
    are read by seq instead: this is the worst case, beside the same queries with
    everything indexed.
    """
    tail = INDEX_EVERY - 1
    conn = connect(path, busy_timeout_ms=5000, writer=True)
    try:
        head = conn.execute("SELECT max(seq) FROM decisions").fetchone()[0]
        end = conn.execute("SELECT max(ts) FROM decisions").fetchone()[0]
    finally:
        conn.close()
    until = datetime.fromisoformat(end) + timedelta(seconds=1)
    filters = [DecisionFilter(principal=f"spiffe://example.org/services/s{p % PRINCIPALS}",
                              since=until - timedelta(days=1), until=until)
               for p in range(QUERIES)]
    indexed = page_latencies(path, filters)
    conn = connect(path, busy_timeout_ms=5000, writer=True)
    try:  # the state a log is in just before its next catch-up
        conn.execute("DELETE FROM principal_index WHERE seq > ?", (head - tail,))
        conn.execute("UPDATE index_state SET through_seq = ?", (head - tail,))
        with_tail = page_latencies(path, filters)
        catch_up(conn)
    finally:
        conn.close()
    return (f"| principal + the last day, the newest {tail:,} records not yet indexed (the most "
            f"the writer leaves) | {with_tail[0]:.1f} | {with_tail[1]:.1f} | {with_tail[2]:.0f} "
            f"| everything indexed: {indexed[0]:.1f} | ≤ 50 (p50) |")


def page_latencies(path: Path, filters: list[DecisionFilter]) -> tuple[float, float, float]:
    """p50 and p95 (ms) of one first page per filter, and the mean records per page."""
    store = SqliteDecisionLog(path)
    try:
        times, found = [], 0
        for flt in filters:
            t = time.perf_counter()
            found += len(store.query(flt, limit=100).records)
            times.append(time.perf_counter() - t)
    finally:
        store.close()
    times.sort()
    return (times[len(times) // 2] * 1e3, times[int(len(times) * 0.95)] * 1e3,
            found / len(filters))


def unindexed_query_ms(path: Path, flt: DecisionFilter) -> float:
    """The same query with the indexes out of play (a full scan): what they save."""
    where, params = where_clause(flt)
    sql = f"SELECT seq, record FROM decisions NOT INDEXED{where} ORDER BY seq DESC LIMIT 101"
    conn = connect(path, busy_timeout_ms=5000)
    try:
        times = []
        for _ in range(3):
            t = time.perf_counter()
            conn.execute(sql, params).fetchall()
            times.append(time.perf_counter() - t)
    finally:
        conn.close()
    return statistics.median(times) * 1e3


def query_plan(path: Path) -> str:
    flt = DecisionFilter(principal="spiffe://example.org/services/s1", since=T0,
                         until=T0 + timedelta(days=1))
    sql, params = page_sql(flt, 101)  # as sqlite_read.query
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    return "; ".join(str(r[-1]) for r in rows)


def main() -> int:
    print(f"machine: {machine()}", flush=True)
    header = ("| store | ours: append() records/s | ours: CPU µs/record | records per commit "
              "| baseline: plain batched inserts, records/s | ours / plain | target "
              "| the log's schema, executemany, records/s | ours / schema "
              "| a plain logger (json.dumps), records/s | ours / logger |"
              "\n|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="pdp-bench-audit-") as tmp:
        workdir = Path(tmp)
        print(header, flush=True)
        throughput = sqlite_throughput(workdir) + postgres_throughput()
        for f in workdir.glob("*.db*"):
            f.unlink()
        path = workdir / "million.db"
        print(f"building {QUERY_RECORDS:,} records ...", flush=True)
        built = build_query_log(path)
        size_mb = path.stat().st_size / 2**20
        print(f"built in {built:.0f} s ({size_mb:,.0f} MiB)", flush=True)
        qheader = (f"| query (SQLite, {QUERY_RECORDS:,} records) | p50 ms | p95 ms | records per page "
                   "| baseline: no index (full scan), ms | target |\n|---|---:|---:|---:|---:|---|")
        print(qheader, flush=True)
        queries = query_latencies(path)
        queries.append(tail_query_latencies(path))
        print(queries[-1], flush=True)
        plan = query_plan(path)
    body = "\n".join([
        f"Append throughput: {RECORDS:,} records of ~1.5 KB through `append()` from "
        f"{' or '.join(map(str, PRODUCERS))} concurrent tasks (median of {ROUNDS} rounds, "
        "taking turns with the baselines; PostgreSQL: "
        f"{RECORDS // 2:,}). Baselines, in transactions of {BATCH}, the same durability, "
        "no chain, no event loop: *plain batched inserts*: the rows built beforehand, "
        "`executemany` into a table with its primary key only (what SQLite alone does with "
        "them; serializing with orjson inside the loop measures the same); *schema*: the same "
        "rows into the log's own table and indexes; *a plain logger*: id, timestamp, "
        "principal and `json.dumps(record)` made in the loop, into a bare table. Target: the "
        f"issue's {TARGET_PER_S:,}/s, and the share of plain batched inserts it stands for "
        f"({RATIO_RANGE[0]}–{RATIO_RANGE[1]}: 30,000 of the issue's 80,000 to 60,000). "
        "CPU µs/record is the process's CPU time (every thread; PostgreSQL's server not "
        "included) per record. Ratios are floored to two places.", "",
        header, *throughput, "",
        f"Queries: {QUERY_RECORDS:,} records, {PRINCIPALS} principals over 30 days "
        f"(built in {built:.0f} s, {size_mb:,.0f} MiB); {QUERIES} random principal + window "
        "queries per row, `limit=100`.", "",
        qheader, *queries, "",
        f"Plan: `{plan}`.",
    ])
    record("Decision log", "python -m bench audit", body)
    return 0


__all__ = ["main", "make_record"]
