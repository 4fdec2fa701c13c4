"""The console's overview aggregates: SQLite's and PostgreSQL's SQL agree with the
reference computed from records in Python, for any time range."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.audit import MemoryDecisionLog, SqliteDecisionLog, rollups
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
