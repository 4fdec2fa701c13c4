"""The console's overview aggregates: SQLite's and PostgreSQL's SQL agree with the
reference computed from records in Python, for any time range."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack, closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.audit import MemoryDecisionLog, SqliteDecisionLog, hourly_rollup, rollups
from pdp.audit.store import DecisionStore
from tests.audit.pgschema import postgres_schema, require_postgres

T0 = datetime(2026, 11, 23, 13, 0, 0, tzinfo=UTC)
PRINCIPALS = [None, "spiffe://a.org/x", "spiffe://a.org/y", "spiffe://b.org/z"]
CODES = ["policy.permit", "policy.forbid", "policy.no_permit", "identity.expired"]


def random_record(rng: random.Random, i: int) -> dict[str, Any]:
    decision = rng.choice(["allow", "deny", "deny", None])
    return {
        "decision_id": f"d{i:05d}", "kind": rng.choice(["decision"] * 4 + ["admin"]),
        # spread over three days, so every bucket width is exercised
        "timestamp": (T0 + timedelta(seconds=rng.randrange(0, 3 * 86400))).isoformat(),
        "principal": rng.choice(PRINCIPALS), "action": "read", "resource": "r",
        "decision": decision,
        "reasons": [{"policy": p} for p in rng.sample(["p1", "p2", "p3"], rng.randrange(0, 3))],
        "reason_codes": rng.sample(CODES, rng.randrange(0, 3)),
        "latency_us": rng.randrange(50, 50_000) if rng.random() < 0.9 else None,
    }


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stores(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DecisionStore, Any]]:
    rng = random.Random(19)
    records = sorted((random_record(rng, i) for i in range(400)),
                     key=lambda r: r["timestamp"])
    with ExitStack() as stack:
        if request.param == "postgres":
            from pdp.audit.postgres import PostgresDecisionLog

            require_postgres()
            sql: DecisionStore = PostgresDecisionLog(stack.enter_context(postgres_schema()))
        else:
            path: Path = tmp_path_factory.mktemp("rollups") / "decisions.db"
            sql = SqliteDecisionLog(path)
        memory = MemoryDecisionLog()
        for record in records:
            sql.append_sync(dict(record))
            memory.append_sync(dict(record))
        rollups.prepare_store(sql)
        rollups.prepare_store(sql)  # idempotent
        yield sql, memory
        sql.close()


def _ts(seconds: int) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@settings(max_examples=40, deadline=None)
@given(start=st.integers(-3600, 3 * 86400), length=st.sampled_from(
    [60, 3599, 7200, 7201, 86400, 3 * 86400, 3 * 86400 + 1, 10 * 86400]))
def test_sql_overview_equals_the_reference(stores, start: int, length: int) -> None:
    sql, memory = stores
    since, until = _ts(start), _ts(start + length)
    assert rollups.overview(sql, since, until) == rollups.overview(memory, since, until)
    assert rollups.policy_hits(sql, since, until) == rollups.policy_hits(memory, since, until)
    assert rollups.counts(sql, since, until) == rollups.counts(memory, since, until)


def test_the_whole_range_counts_every_decision_record(stores) -> None:
    sql, _ = stores
    everything = rollups.overview(sql, _ts(-1), _ts(4 * 86400))
    records = [r for r in sql.iter_all() if r["kind"] == "decision"]
    assert everything.total == len(records) > 0
    assert everything.denies == sum(1 for r in records if r["decision"] != "allow")
    assert len(everything.buckets) > 1  # days
    assert everything.top_reasons and everything.top_denied


def test_a_reversed_or_bad_range_is_refused(stores) -> None:
    sql, _ = stores
    with pytest.raises(ValueError):
        rollups.overview(sql, _ts(10), _ts(5))
    with pytest.raises(ValueError):
        rollups.overview(sql, "yesterday", _ts(5))


def test_bucket_boundaries_are_half_open() -> None:
    assert rollups.bucket_end("2026-11-23T13:59", 16) == "2026-11-23T14:00:00.000000Z"
    assert rollups.bucket_end("2026-11-23T23", 13) == "2026-11-24T00:00:00.000000Z"
    assert rollups.bucket_end("2026-12-31", 10) == "2027-01-01T00:00:00.000000Z"
    assert rollups.bucket_prefix("2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z") == 10
    assert rollups.percentiles([]) == {"p50": None, "p90": None, "p99": None}
    assert rollups.percentiles(list(range(1, 101))) == {"p50": 51, "p90": 91, "p99": 100}


# -- the hourly rollup (pdp.audit.hourly_rollup): never wrong, whatever its state -----------

DAMAGE = ["none", "drop_table", "empty_hourly", "delete_state", "retention", "drop_all"]


def _damage(conn: Any, how: str) -> None:
    """Put the derived tables (or the log's front) in a state the overview must survive."""
    statements = {
        "none": [],
        "drop_table": ["DROP TABLE overview_hourly_reasons"],
        "empty_hourly": ["DELETE FROM overview_hourly"],
        "delete_state": ["DELETE FROM overview_rollup_state"],
        # retention: the oldest records go, the rollup still counts them until rebuilt
        "retention": ["DELETE FROM decisions WHERE seq <= (SELECT min(seq) + 9 FROM decisions)"],
        "drop_all": [f"DROP TABLE {t}" for t in (*hourly_rollup.DATA_TABLES,
                                                  "overview_rollup_state")],
    }[how]
    for statement in statements:
        conn.execute(statement)


def _raw(sql: DecisionStore) -> Any:
    """A writing connection to the store's own database (to damage the derived tables)."""
    if isinstance(sql, SqliteDecisionLog):
        return sqlite3.connect(sql.path, isolation_level=None)
    import psycopg

    return psycopg.connect(sql.dsn, autocommit=True)  # type: ignore[attr-defined]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32), first=st.integers(0, 120), later=st.integers(0, 60),
       damage=st.sampled_from(DAMAGE),
       ranges=st.lists(st.tuples(st.integers(-3600, 3 * 86400),
                                 st.integers(3 * 3600, 4 * 86400)), min_size=1, max_size=4))
def test_rollup_backed_overview_equals_the_reference(
        tmp_path_factory: pytest.TempPathFactory, backend: str, seed: int, first: int,
        later: int, damage: str, ranges: list[tuple[int, int]]) -> None:
    """Random logs, ranges starting and ending mid-hour, records appended after a catch-up
    (some older than the newest: the rollup adds to past hours), and a rollup table that is
    missing, emptied, without state, or outlived by retention: the overview equals
    ``overview_records`` of the records in the log, before and after the next catch-up."""
    rng = random.Random(seed)
    with ExitStack() as stack:
        if backend == "postgres":
            from pdp.audit.postgres import PostgresDecisionLog

            require_postgres()
            sql: DecisionStore = PostgresDecisionLog(stack.enter_context(postgres_schema()))
        else:
            sql = SqliteDecisionLog(tmp_path_factory.mktemp("hourly") / "decisions.db")
        stack.callback(sql.close)
        batch = sorted((random_record(rng, i) for i in range(first)),
                       key=lambda r: r["timestamp"])
        for record in batch:
            sql.append_sync(dict(record))
        rollups.prepare_store(sql)  # catches the rollup up
        for i in range(later):  # behind: appended after the catch-up, any timestamp
            sql.append_sync(random_record(rng, first + i))
        conn = stack.enter_context(closing(_raw(sql)))
        _damage(conn, damage)
        held = list(sql.iter_all())
        # first as a catch-up that failed leaves it (the rollup behind and damaged), then
        # caught up (the later records folded into their hours, or the rollup rebuilt)
        for attempt in ("catch-up failed", "caught up"):
            with ExitStack() as failing:
                if attempt == "catch-up failed":
                    failing.enter_context(patch.object(rollups, "catch_up_store", _no_op))
                else:
                    rollups.catch_up_store(sql)
                for start, length in ranges:
                    since, until = _ts(start), _ts(start + length)
                    expected = rollups.overview_records(iter(held), since, until)
                    assert rollups.overview(sql, since, until) == expected, attempt
                    assert rollups.counts(sql, since, until) == (expected.total,
                                                                 expected.denies), attempt


def _no_op(store: Any) -> None:
    """A catch-up that did nothing (the log was busy, read-only or unreachable)."""


def test_a_caught_up_rollup_holds_every_decision_record(tmp_path: Path) -> None:
    """The rollup is really used: after a catch-up its counts are the log's, and a
    forged count in it shows in the overview (so the equality tests above do test it)."""
    rng = random.Random(7)
    sql = SqliteDecisionLog(tmp_path / "decisions.db")
    for record in sorted((random_record(rng, i) for i in range(200)),
                         key=lambda r: r["timestamp"]):
        sql.append_sync(record)
    rollups.catch_up_store(sql)
    decisions = [r for r in sql.iter_all() if r["kind"] == "decision"]
    with closing(sqlite3.connect(sql.path)) as conn:
        held = conn.execute("SELECT sum(allow + deny), max(through_seq) FROM overview_hourly, "
                            "overview_rollup_state").fetchone()
        assert held == (len(decisions), max(r["seq"] for r in sql.iter_all()))
        # one allow moved to deny in a whole hour: the total stays, the split changes
        conn.execute("UPDATE overview_hourly SET allow = allow - 1, deny = deny + 1 "
                     "WHERE hour = (SELECT min(hour) FROM overview_hourly WHERE allow > 0)")
        conn.commit()
    ov = rollups.overview(sql, _ts(0), _ts(3 * 86400))
    assert ov.denies == sum(1 for r in decisions if r["decision"] != "allow") + 1
    sql.close()

