"""The SQLite decision log: group commit, restarts, failures and tampering with the file."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pdp.audit import AuditUnavailable, DecisionFilter, SqliteDecisionLog
from pdp.audit.sqlite import schema as sqlite_schema
from tests.audit.sqlraw import raw, text_of

MakeRecord = Callable[..., dict[str, Any]]




def fill(log: SqliteDecisionLog, make_record: MakeRecord, n: int) -> list[dict[str, Any]]:
    return [log.append_sync(make_record(decision="deny" if i % 2 else "allow"))
            for i in range(n)]


def seqs(log: SqliteDecisionLog) -> list[int]:
    return [r["seq"] for r in log.iter_all()]


# -- the file -----------------------------------------------------------------

def test_log_file_is_in_wal_mode_with_a_schema_version(sqlite_log: SqliteDecisionLog) -> None:
    with raw(sqlite_log.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == sqlite_schema.SCHEMA_VERSION
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(decisions)")}
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master "
                                                  "WHERE type = 'table'")}
    assert {"decisions_ts", "decisions_action_ts", "decisions_decision_ts"} <= indexes
    assert "decisions_principal_ts" not in indexes  # replaced by the bulk-filled table
    assert {"decisions", "checkpoints", "principal_index", "index_state"} <= tables


def test_missing_parent_directories_are_created(tmp_path: Path,
                                                make_record: MakeRecord) -> None:
    with SqliteDecisionLog(tmp_path / "state" / "pdp" / "decisions.db") as log:
        assert log.append_sync(make_record())["seq"] == 1


def test_file_written_by_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "decisions.db"
    SqliteDecisionLog(path).close()
    with raw(path) as conn:
        conn.execute("PRAGMA user_version=99")
    with pytest.raises(AuditUnavailable, match="newer"):
        SqliteDecisionLog(path)


def test_path_that_cannot_hold_a_database_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "decisions.db").mkdir()  # a directory where the file should be
    with pytest.raises(AuditUnavailable):
        SqliteDecisionLog(tmp_path / "decisions.db")


@pytest.mark.parametrize("kwargs", [{"batch_max": 0}, {"synchronous": "SOMETIMES"}])
def test_bad_settings_are_value_errors(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SqliteDecisionLog(tmp_path / "decisions.db", **kwargs)


def test_chain_continues_across_close_and_reopen(tmp_path: Path,
                                                 make_record: MakeRecord) -> None:
    path = tmp_path / "decisions.db"
    with SqliteDecisionLog(path) as log:
        before = fill(log, make_record, 3)
    with SqliteDecisionLog(path) as log:
        after = asyncio.run(log.append(make_record()))
        assert after["seq"] == 4 and after["prev_hash"] == before[-1]["hash"]
        assert log.verify().ok and log.verify().checked == 4


def test_two_logs_on_one_file_keep_a_single_chain(tmp_path: Path,
                                                  make_record: MakeRecord) -> None:
    # As two `uvicorn --workers` processes would: the head is read inside each transaction.
    path = tmp_path / "decisions.db"
    with SqliteDecisionLog(path) as a, SqliteDecisionLog(path) as b:
        for i in range(10):
            (a if i % 2 else b).append_sync(make_record())
        assert seqs(a) == list(range(1, 11))
        assert a.verify().ok


# -- group commit -------------------------------------------------------------

def test_concurrent_appends_are_all_committed_in_fewer_transactions(
        sqlite_log: SqliteDecisionLog, make_record: MakeRecord) -> None:
    records = [make_record() for _ in range(500)]

    async def main() -> list[dict[str, Any]]:
        return await asyncio.gather(*(sqlite_log.append(r) for r in records))

    stored = asyncio.run(main())
    assert sorted(r["seq"] for r in stored) == list(range(1, 501))
    assert {r["decision_id"] for r in stored} == {r["decision_id"] for r in records}
    assert seqs(sqlite_log) == list(range(1, 501))
    assert sqlite_log.appended == 500
    assert sqlite_log.commits < 500 / 5, "expected group commits of several records"
    assert sqlite_log.verify().ok


def test_a_transaction_never_carries_more_than_batch_max(tmp_path: Path,
                                                         make_record: MakeRecord) -> None:
    with SqliteDecisionLog(tmp_path / "decisions.db", batch_max=8) as log:
        async def main() -> None:
            await asyncio.gather(*(log.append(make_record()) for _ in range(100)))

        asyncio.run(main())
        assert log.commits >= 100 / 8
        assert seqs(log) == list(range(1, 101))


def test_appends_from_many_threads_form_one_chain(sqlite_log: SqliteDecisionLog,
                                                 make_record: MakeRecord) -> None:
    records = [make_record() for _ in range(200)]
    chunks = [records[i::8] for i in range(8)]
    threads = [threading.Thread(target=lambda c=c: [sqlite_log.append_sync(r) for r in c])
               for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seqs(sqlite_log) == list(range(1, 201))
    assert sqlite_log.verify().ok


def test_close_commits_everything_already_queued(tmp_path: Path,
                                                 make_record: MakeRecord) -> None:
    log = SqliteDecisionLog(tmp_path / "decisions.db")

    async def main() -> list[dict[str, Any]]:
        tasks = [asyncio.create_task(log.append(make_record())) for _ in range(300)]
        await asyncio.sleep(0)  # every task has queued its record
        log.close()
        return await asyncio.gather(*tasks)

    assert len(asyncio.run(main())) == 300
    with SqliteDecisionLog(tmp_path / "decisions.db") as reopened:
        assert seqs(reopened) == list(range(1, 301))


# -- failures -----------------------------------------------------------------

def test_append_is_unavailable_while_the_file_is_locked_and_nothing_is_written(
        tmp_path: Path, make_record: MakeRecord) -> None:
    with SqliteDecisionLog(tmp_path / "decisions.db", busy_timeout_ms=100) as log:
        first = log.append_sync(make_record())
        with raw(log.path) as other:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            with pytest.raises(AuditUnavailable, match="locked"):
                log.append_sync(make_record())
            with pytest.raises(AuditUnavailable):
                asyncio.run(log.append(make_record()))
            assert log.tail(5) == [first]  # readers are not blocked by the writer lock
            other.execute("ROLLBACK")
        # The writer survived; the chain continues right after the last commit.
        later = log.append_sync(make_record())
        assert later["seq"] == 2 and later["prev_hash"] == first["hash"]
        assert log.verify().ok and log.commits == 2


@pytest.fixture(params=[2000, 3], ids=["one-statement", "several-statements"])
def rows_per_insert(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Batches go in one multi-row INSERT, or several in one transaction when large."""
    monkeypatch.setattr(sqlite_schema, "ROWS_PER_INSERT", request.param)
    return int(request.param)


def test_large_batches_split_over_several_statements_stay_one_chain(
        sqlite_log: SqliteDecisionLog, make_record: MakeRecord, rows_per_insert: int) -> None:
    async def main() -> None:
        await asyncio.gather(*(sqlite_log.append(make_record()) for _ in range(200)))

    asyncio.run(main())
    assert seqs(sqlite_log) == list(range(1, 201))
    assert sqlite_log.verify().ok


def test_failed_insert_rolls_back_its_whole_batch(tmp_path: Path, make_record: MakeRecord,
                                                 rows_per_insert: int) -> None:
    path = tmp_path / "decisions.db"
    with SqliteDecisionLog(path, busy_timeout_ms=5000) as log:
        with raw(path) as conn:  # the disk says no to one record, mid-transaction
            conn.execute("CREATE TRIGGER poison BEFORE INSERT ON decisions "
                         "WHEN NEW.principal = 'poison' BEGIN SELECT RAISE(ABORT, 'no'); END")
        records = [make_record() for _ in range(40)]
        records[20]["principal"] = "poison"

        async def main() -> list[Any]:
            with raw(path) as blocker:
                blocker.execute("BEGIN IMMEDIATE")  # hold the writer so the records pile up
                tasks = [asyncio.create_task(log.append(r)) for r in records]
                await asyncio.sleep(0.2)
                blocker.execute("ROLLBACK")
            return await asyncio.gather(*tasks, return_exceptions=True)

        outcomes = asyncio.run(main())
        failed = [r["decision_id"] for r, o in zip(records, outcomes)
                  if isinstance(o, AuditUnavailable)]
        stored = [o for o in outcomes if isinstance(o, dict)]
        assert len(failed) + len(stored) == 40
        assert records[20]["decision_id"] in failed and len(failed) > 1  # its batch mates too
        assert all(log.get(i) is None for i in failed)  # nothing half-written
        assert seqs(log) == list(range(1, len(stored) + 1))
        assert log.verify().ok
        assert log.append_sync(make_record())["seq"] == len(stored) + 1


def test_caller_that_gives_up_does_not_disturb_the_writer(sqlite_log: SqliteDecisionLog,
                                                          make_record: MakeRecord) -> None:
    record = make_record()

    async def main() -> None:
        task = asyncio.create_task(sqlite_log.append(record))
        await asyncio.sleep(0)
        task.cancel()  # e.g. the request timed out; the record may still be stored
        await asyncio.gather(task, return_exceptions=True)
        await sqlite_log.append(make_record())

    asyncio.run(main())
    assert sqlite_log.verify().ok
    assert len(sqlite_log.tail(5)) in (1, 2)


def test_open_read_transaction_does_not_block_appends(sqlite_log: SqliteDecisionLog,
                                                      make_record: MakeRecord) -> None:
    sqlite_log.append_sync(make_record())
    with raw(sqlite_log.path) as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM decisions").fetchone()
        assert sqlite_log.append_sync(make_record())["seq"] == 2
        reader.execute("COMMIT")


# -- tampering with the file ----------------------------------------------------

def test_edited_record_json_is_a_hash_mismatch_at_its_seq(
        sqlite_log: SqliteDecisionLog, make_record: MakeRecord) -> None:
    stored = fill(sqlite_log, make_record, 10)
    forged = {**stored[4], "decision": "allow" if stored[4]["decision"] == "deny" else "deny"}
    with raw(sqlite_log.path) as conn:
        conn.execute("UPDATE decisions SET record = ?, decision = ? WHERE seq = 5",
                     (text_of(forged), forged["decision"]))
    report = sqlite_log.verify()
    assert (report.ok, report.problem, report.first_broken_seq) == (False, "hash mismatch", 5)
    assert report.first_broken_decision_id == stored[4]["decision_id"]


def test_deleted_middle_row_is_reported_as_a_sequence_gap(
        sqlite_log: SqliteDecisionLog, make_record: MakeRecord) -> None:
    fill(sqlite_log, make_record, 10)
    with raw(sqlite_log.path) as conn:
        conn.execute("DELETE FROM decisions WHERE seq = 5")
    report = sqlite_log.verify()
    assert (report.ok, report.problem, report.first_broken_seq) == (False, "sequence gap", 5)


def test_deleted_row_with_renumbered_successors_breaks_prev_hash(
        sqlite_log: SqliteDecisionLog, make_record: MakeRecord) -> None:
    fill(sqlite_log, make_record, 10)
    with raw(sqlite_log.path) as conn:
        conn.execute("DELETE FROM decisions WHERE seq = 5")
        for seq, text in conn.execute("SELECT seq, record FROM decisions WHERE seq > 5 "
                                      "ORDER BY seq").fetchall():
            record = {**json.loads(text), "seq": seq - 1}
            conn.execute("UPDATE decisions SET seq = ?, record = ? WHERE seq = ?",
                         (seq - 1, text_of(record), seq))
    report = sqlite_log.verify()
    assert (report.problem, report.first_broken_seq) == ("prev_hash mismatch", 5)


def test_swapped_rows_are_reported_out_of_order(sqlite_log: SqliteDecisionLog,
                                                make_record: MakeRecord) -> None:
    stored = fill(sqlite_log, make_record, 10)
    with raw(sqlite_log.path) as conn:
        cols = [row[1] for row in conn.execute("PRAGMA table_info(decisions)") if row[1] != "seq"]
        listed = ", ".join(cols)
        row4, row7 = (conn.execute(f"SELECT {listed} FROM decisions WHERE seq = ?",
                                   (s,)).fetchone() for s in (4, 7))
        conn.execute("BEGIN")
        conn.execute("DELETE FROM decisions WHERE seq IN (4, 7)")
        marks = ", ".join("?" * (len(cols) + 1))
        conn.execute(f"INSERT INTO decisions (seq, {listed}) VALUES ({marks})", (4, *row7))
        conn.execute(f"INSERT INTO decisions (seq, {listed}) VALUES ({marks})", (7, *row4))
        conn.execute("COMMIT")
    report = sqlite_log.verify()
    assert (report.ok, report.problem, report.first_broken_seq) == (False, "out of order", 4)
    assert report.first_broken_decision_id == stored[6]["decision_id"]


def test_query_column_changed_behind_the_records_back_is_an_index_mismatch(
        sqlite_log: SqliteDecisionLog, make_record: MakeRecord) -> None:
    stored = fill(sqlite_log, make_record, 6)
    assert stored[3]["decision"] == "deny"
    with raw(sqlite_log.path) as conn:
        conn.execute("UPDATE decisions SET decision = 'allow' WHERE seq = 4")
    report = sqlite_log.verify()
    assert (report.ok, report.problem, report.first_broken_seq) == (False, "index mismatch", 4)
    assert report.checked == 3 and report.last_seq == 3


def test_garbled_record_text_is_reported_malformed(sqlite_log: SqliteDecisionLog,
                                                   make_record: MakeRecord) -> None:
    fill(sqlite_log, make_record, 4)
    with raw(sqlite_log.path) as conn:
        conn.execute("UPDATE decisions SET record = '{not json' WHERE seq = 2")
    report = sqlite_log.verify()
    assert (report.ok, report.problem, report.first_broken_seq) == (False, "malformed record", 2)


def test_verify_streams_logs_longer_than_one_read_chunk(
        sqlite_log: SqliteDecisionLog, make_record: MakeRecord) -> None:
    async def main() -> None:
        await asyncio.gather(*(sqlite_log.append(make_record()) for _ in range(2500)))

    asyncio.run(main())
    with raw(sqlite_log.path) as conn:
        conn.execute("DELETE FROM decisions WHERE seq = 2100")
    report = sqlite_log.verify()
    assert (report.problem, report.first_broken_seq, report.checked) == ("sequence gap", 2100,
                                                                         2099)


# -- queries --------------------------------------------------------------------

@pytest.mark.parametrize(("flt", "uses"), [
    # A principal: the principal index up to the watermark, the records after it by seq.
    (DecisionFilter(principal="spiffe://example.org/a"),
     ("principal_index USING PRIMARY KEY (principal=?)", "INTEGER PRIMARY KEY (rowid>?)")),
    (DecisionFilter(principal_prefix="spiffe://example.org/", since="2026-01-01T00:00:00Z"),
     ("principal_index USING PRIMARY KEY (principal>? AND principal<?)",
      "INTEGER PRIMARY KEY (rowid>?)")),
    (DecisionFilter(principal="spiffe://example.org/a", decision="deny"),
     ("principal_index USING PRIMARY KEY (principal=?)", "INTEGER PRIMARY KEY (rowid=?)")),
    (DecisionFilter(action="read", since="2026-01-01T00:00:00Z"), ("decisions_action_ts",)),
])
def test_filters_on_indexed_columns_use_their_index(sqlite_log: SqliteDecisionLog,
                                                    flt: DecisionFilter,
                                                    uses: tuple[str, ...]) -> None:
    from pdp.audit.sqlite.pages import page_sql

    sql, params = page_sql(flt, 10)
    with raw(sqlite_log.path) as conn:
        plan = " ".join(str(row) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    for index in uses:
        assert index in plan
    assert "SCAN decisions" not in plan
