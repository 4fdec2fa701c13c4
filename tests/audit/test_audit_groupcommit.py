"""Group commit details shared by the SQL stores: atomic groups, batch sizes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pdp.audit import AuditUnavailable, DuplicateDecision, SqliteDecisionLog
from pdp.audit.store import DecisionStore
from tests.audit.sqlraw import RawSql

MakeRecord = Callable[..., dict[str, Any]]


def test_a_group_is_stored_in_order_in_one_transaction(sql_store: DecisionStore,
                                                       make_record: MakeRecord) -> None:
    sql_store.append_sync(make_record())
    commits = sql_store.commits  # type: ignore[attr-defined]
    records = [make_record() for _ in range(37)]
    outcomes = sql_store.append_many_sync(records)  # type: ignore[attr-defined]
    assert [o["decision_id"] for o in outcomes] == [r["decision_id"] for r in records]
    assert [o["seq"] for o in outcomes] == list(range(2, 39))
    assert sql_store.commits == commits + 1  # type: ignore[attr-defined]
    assert sql_store.verify().ok


def test_a_group_with_a_repeat_settles_it_from_the_stored_copy(
        sql_store: DecisionStore, make_record: MakeRecord) -> None:
    first = sql_store.append_sync(make_record())
    clash = {**make_record(), "decision_id": first["decision_id"]}
    fresh = make_record()
    outcomes = sql_store.append_many_sync([dict(first), clash, fresh])  # type: ignore[attr-defined]
    assert outcomes[0] == first
    assert type(outcomes[1]).__name__ == "DuplicateDecision"
    assert outcomes[2]["seq"] == 2


def test_callers_in_one_batch_with_a_clash_among_them_each_get_their_own_outcome(
        sql_store: DecisionStore, make_record: MakeRecord) -> None:
    # Appends queued in one loop turn reach the writer together (one batch, unless the
    # machine splits it: the outcomes must not depend on that); one repeats a stored
    # decision_id with other content. The fast path's INSERT fails on it, the batch is
    # redone from the stored head: that caller gets DuplicateDecision, a retry of a
    # stored record the stored copy, every other caller its own record, chained in the
    # order they queued.
    first = sql_store.append_sync(make_record())
    clash = {**make_record(), "decision_id": first["decision_id"]}
    records = [make_record() for _ in range(6)]
    sent = [*records[:2], clash, *records[2:4], dict(first), *records[4:]]

    async def all_at_once() -> list[Any]:
        return await asyncio.gather(*(sql_store.append(r) for r in sent),
                                    return_exceptions=True)

    outcomes = asyncio.run(all_at_once())
    assert isinstance(outcomes[2], DuplicateDecision)
    assert outcomes[5] == first
    fresh = [o for i, o in enumerate(outcomes) if i not in (2, 5)]
    assert [o["decision_id"] for o in fresh] == [r["decision_id"] for r in records]
    assert [o["seq"] for o in fresh] == list(range(2, 8))
    assert [r["seq"] for r in sql_store.iter_all()] == list(range(1, 8))
    assert sql_store.verify().ok
    assert sql_store.append_sync(make_record())["seq"] == 8  # the writer carries on


def test_a_failing_group_stores_none_of_its_records(sql_store: DecisionStore,
                                                    make_record: MakeRecord) -> None:
    sql_store.append_sync(make_record())
    records = [make_record() for _ in range(5)]
    records[3]["principal"] = "poison"
    with RawSql(sql_store) as raw:
        if raw.postgres:
            raw.execute("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                        "$$ BEGIN RAISE EXCEPTION 'no'; END $$")
            raw.execute("CREATE TRIGGER poison BEFORE INSERT ON decisions FOR EACH ROW "
                        "WHEN (NEW.principal = 'poison') EXECUTE FUNCTION refuse()")
        else:
            raw.execute("CREATE TRIGGER poison BEFORE INSERT ON decisions WHEN "
                        "NEW.principal = 'poison' BEGIN SELECT RAISE(ABORT, 'no'); END")
    outcomes = sql_store.append_many_sync(records)  # type: ignore[attr-defined]
    assert all(isinstance(o, AuditUnavailable) for o in outcomes)
    assert [r["seq"] for r in sql_store.iter_all()] == [1]
    assert sql_store.append_sync(make_record())["seq"] == 2


def test_empty_group_and_malformed_record(sql_store: DecisionStore,
                                          make_record: MakeRecord) -> None:
    assert sql_store.append_many_sync([]) == []  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        sql_store.append_many_sync([make_record(), {"no": "id"}])  # type: ignore[attr-defined]
    assert sql_store.tail(5) == []


@pytest.mark.parametrize(("available", "taken"), [(1, 1), (63, 63), (64, 64), (65, 64),
                                                  (137, 128), (511, 448), (5000, 1984)])
def test_sqlite_cuts_large_batches_to_multiples_of_64(tmp_path: Path, available: int,
                                                      taken: int) -> None:
    with SqliteDecisionLog(tmp_path / "d.db") as log:
        assert log._batch_size(available) == taken
