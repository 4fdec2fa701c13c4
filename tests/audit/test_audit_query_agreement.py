"""SQLite's and PostgreSQL's WHERE clauses mean exactly what ``matches`` means, for any filter."""

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

from pdp.audit import DecisionFilter, MemoryDecisionLog, SqliteDecisionLog
from pdp.audit.query import matches
from pdp.audit.records import columns_of
from pdp.audit.store import DecisionStore
from tests.audit.pgschema import postgres_schema, require_postgres
from tests.conftest import examples

T0 = datetime(2026, 11, 23, 13, 0, 0, tzinfo=UTC)
PRINCIPALS = [None, "spiffe://a.org/x", "spiffe://a.org/xy", "spiffe://a.org/y",
              "spiffe://b.org/x",
              "SPIFFE://a.org/x", "spiffe://a.org/ü", "spiffe://a.org/x\U0001f600", "a_b", "a%b"]
ACTIONS = [None, "read", "write"]
DECISIONS = [None, "allow", "deny"]
POLICIES = ["p1", "p2", "p10", "p1-extra"]
CODES = ["policy.permit", "policy.forbid", "identity.expired"]


def random_record(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "decision_id": f"d{i:04d}", "kind": rng.choice(["decision", "decision", "admin"]),
        "timestamp": (T0 + timedelta(seconds=rng.randrange(0, 100))).isoformat(),
        "principal": rng.choice(PRINCIPALS), "action": rng.choice(ACTIONS),
        "resource": rng.choice([None, "r1", "r2"]), "decision": rng.choice(DECISIONS),
        "pep": rng.choice([None, "envoy", "nginx"]),
        "reasons": [{"policy": p} for p in rng.sample(POLICIES, rng.randrange(0, 3))],
        "reason_codes": rng.sample(CODES, rng.randrange(0, 3)),
    }


@pytest.fixture(scope="module", params=["sqlite", "sqlite-indexed", "postgres"])
def stores(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[DecisionStore]]:
    """The in-memory store (the reference) and one SQL store, holding the same records."""
    rng = random.Random(7)
    records = [random_record(rng, i) for i in range(300)]
    with ExitStack() as stack:
        if request.param == "postgres":
            from pdp.audit.postgres import PostgresDecisionLog

            require_postgres()
            sql: DecisionStore = PostgresDecisionLog(stack.enter_context(postgres_schema()))
        else:
            path: Path = tmp_path_factory.mktemp("agreement") / "decisions.db"
            # "sqlite-indexed": most records reach the bulk-filled principal index (256 of
            # 300) and the rest stay in its tail; "sqlite": all of them are tail.
            sql = SqliteDecisionLog(path, index_every=64 if request.param.endswith("indexed")
                                    else 10_000)
        logs: list[DecisionStore] = [MemoryDecisionLog(), sql]
        for log in logs:
            stack.callback(log.close)
            for record in records:
                log.append_sync(record)
        yield logs


def maybe(values: list[Any]) -> st.SearchStrategy[Any]:
    return st.none() | st.sampled_from([v for v in values if v is not None])


filters = st.builds(
    DecisionFilter,
    principal=maybe(PRINCIPALS),
    principal_prefix=st.none() | st.sampled_from(
        ["", "spiffe://a.org/", "spiffe://a.org/x", "SPIFFE", "a", "a%", "a_",
         "spiffe://a.org/\U0001f600", "\U0010ffff"]),
    action=maybe(ACTIONS), resource=maybe(["r1", "r2"]), decision=maybe(DECISIONS),
    policy=maybe(POLICIES + ["p"]), reason_code=maybe(CODES + ["policy"]),
    pep=maybe(["envoy", "nginx"]), kind=maybe(["decision", "admin"]),
    since=st.none() | st.integers(0, 100).map(lambda s: T0 + timedelta(seconds=s)),
    until=st.none() | st.integers(0, 100).map(lambda s: (T0 + timedelta(seconds=s)).isoformat()),
)


def walk(log: DecisionStore, flt: DecisionFilter, limit: int) -> list[str]:
    found, cursor = [], None
    while True:
        page = log.query(flt, limit=limit, cursor=cursor)
        assert len(page.records) <= limit
        found += [r["decision_id"] for r in page.records]
        if (cursor := page.next_cursor) is None:
            return found


@settings(max_examples=examples(200), deadline=None)
@given(flt=filters, limit=st.integers(1, 40))
def test_both_stores_page_through_exactly_the_matching_records(
        stores: list[DecisionStore], flt: DecisionFilter, limit: int) -> None:
    memory, sql = stores
    expected = [r["decision_id"] for r in reversed(list(memory.iter_all()))
                if matches(flt, columns_of(r))]
    assert walk(memory, flt, limit) == expected
    assert walk(sql, flt, limit) == expected
