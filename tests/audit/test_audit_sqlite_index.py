"""The SQLite log's bulk-filled principal index: exact answers, tamper evidence, old files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pdp.audit import DecisionFilter, SqliteDecisionLog
from pdp.audit.chain.verify import verify_log
from pdp.audit.sqlite.schema import SCHEMA_VERSION
from pdp.audit.upkeep.retention import apply_retention
from tests.audit.sqlraw import raw

MakeRecord = Callable[..., dict[str, Any]]
PRINCIPALS = [f"spiffe://example.org/w{i}" for i in range(5)]




def watermark(path: Path) -> int:
    with raw(path) as conn:
        return conn.execute("SELECT through_seq FROM index_state").fetchone()[0]


def fill(log: SqliteDecisionLog, make_record: MakeRecord, n: int) -> list[dict[str, Any]]:
    return [log.append_sync(make_record(principal=PRINCIPALS[i % len(PRINCIPALS)],
                                        decision="deny" if i % 3 == 0 else "allow"))
            for i in range(n)]


def ids_of(log: SqliteDecisionLog, flt: DecisionFilter) -> list[str]:
    found, cursor = [], None
    while True:
        page = log.query(flt, limit=7, cursor=cursor)
        found += [r["decision_id"] for r in page.records]
        if (cursor := page.next_cursor) is None:
            return found


def expected_ids(records: list[dict[str, Any]], principal: str,
                 decision: str | None = None) -> list[str]:
    return [r["decision_id"] for r in reversed(records) if r["principal"] == principal
            and (decision is None or r["decision"] == decision)]


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SqliteDecisionLog]:
    store = SqliteDecisionLog(tmp_path / "decisions.db", index_every=20)
    yield store
    store.close()


def test_the_index_is_filled_every_index_every_records_and_queries_see_the_tail_too(
        log: SqliteDecisionLog, make_record: MakeRecord) -> None:
    records = fill(log, make_record, 50)
    assert watermark(log.path) == 40  # two catch-ups; records 41..50 are the tail
    with raw(log.path) as conn:
        assert conn.execute("SELECT count(*) FROM principal_index").fetchone()[0] == 40
    for principal in PRINCIPALS:
        assert ids_of(log, DecisionFilter(principal=principal)) == expected_ids(records,
                                                                                  principal)
        assert ids_of(log, DecisionFilter(principal=principal, decision="deny")) == \
            expected_ids(records, principal, "deny")
    everyone = ids_of(log, DecisionFilter(principal_prefix="spiffe://example.org/"))
    assert everyone == [r["decision_id"] for r in reversed(records)]
    assert log.verify().ok


def test_records_without_a_principal_are_not_indexed(log: SqliteDecisionLog,
                                                     make_record: MakeRecord,
                                                     make_admin_event: Callable[..., Any]) -> None:
    for _ in range(25):
        log.append_sync(make_admin_event())
    assert watermark(log.path) == 20
    with raw(log.path) as conn:
        assert conn.execute("SELECT count(*) FROM principal_index").fetchone()[0] == 0
    assert log.verify().ok


def test_a_removed_index_entry_hides_nothing_from_verify(log: SqliteDecisionLog,
                                                         make_record: MakeRecord) -> None:
    records = fill(log, make_record, 45)
    victim = records[11]
    with raw(log.path) as conn:
        conn.execute("DELETE FROM principal_index WHERE seq = ?", (victim["seq"],))
    report = log.verify()
    assert (report.ok, report.problem, report.first_broken_seq) == (False, "index mismatch", 12)
    assert report.first_broken_decision_id == victim["decision_id"]
    assert (report.last_seq, report.head_hash) == (11, records[10]["hash"])


@pytest.mark.parametrize("tamper", [
    # the record shows up under another principal's history
    "UPDATE principal_index SET principal = 'spiffe://example.org/w9' WHERE seq = 7",
    # an entry for a record that has no such principal
    "INSERT INTO principal_index VALUES ('spiffe://example.org/w9', '2026-01-01', 7)",
    # an entry beyond the watermark would be counted twice
    "INSERT INTO principal_index SELECT principal, ts, seq FROM decisions WHERE seq = 43",
    # the watermark moved back: the index holds entries past it
    "UPDATE index_state SET through_seq = 6",
    # the watermark row deleted: every entry is past it
    "DELETE FROM index_state",
])
def test_a_tampered_index_is_an_index_mismatch(log: SqliteDecisionLog, make_record: MakeRecord,
                                               tamper: str) -> None:
    records = fill(log, make_record, 45)
    before = {p: ids_of(log, DecisionFilter(principal=p)) for p in PRINCIPALS}
    with raw(log.path) as conn:
        conn.execute(tamper)
    report = log.verify()
    assert (report.ok, report.problem) == (False, "index mismatch")
    assert report.first_broken_seq is not None and report.first_broken_seq <= 43
    if "index_state" in tamper:  # a lower watermark only makes the tail longer
        assert {p: ids_of(log, DecisionFilter(principal=p)) for p in PRINCIPALS} == before
    assert len(records) == 45


def test_a_failing_catch_up_never_fails_an_append_and_queries_stay_exact(
        log: SqliteDecisionLog, make_record: MakeRecord) -> None:
    with raw(log.path) as conn:
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON principal_index "
                     "BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
    records = fill(log, make_record, 45)  # catch-ups at 20 and 40 fail: due again at 60
    assert watermark(log.path) == 0
    assert ids_of(log, DecisionFilter(principal=PRINCIPALS[1])) == expected_ids(records,
                                                                                PRINCIPALS[1])
    with raw(log.path) as conn:
        conn.execute("DROP TRIGGER refuse")
    records += fill(log, make_record, 25)  # the catch-up at 60 indexes all sixty
    assert watermark(log.path) == 60
    assert ids_of(log, DecisionFilter(principal=PRINCIPALS[1])) == expected_ids(records,
                                                                                PRINCIPALS[1])
    assert log.verify().ok


def test_retention_deletes_the_index_entries_of_deleted_records(
        log: SqliteDecisionLog, make_record: MakeRecord) -> None:
    # 61: the catch-up after record 60 runs after its caller was answered, but
    # before record 61 is committed, so it is done when fill() returns.
    records = fill(log, make_record, 61)
    key = Ed25519PrivateKey.generate()
    result = apply_retention(log, older_than=records[30]["timestamp"], key=key)
    assert result.deleted == 30
    with raw(log.path) as conn:  # 31..60 indexed; 61 is the tail
        assert conn.execute("SELECT min(seq), count(*) FROM principal_index").fetchone() == \
            (31, 30)
    report = verify_log(log, public_key=key.public_key())
    assert report.ok and report.anchor_seq == 30
    assert ids_of(log, DecisionFilter(principal=PRINCIPALS[0])) == \
        expected_ids(records[30:], PRINCIPALS[0])


def test_a_file_of_the_previous_schema_gets_its_index_built_on_open(
        tmp_path: Path, make_record: MakeRecord) -> None:
    path = tmp_path / "decisions.db"
    with SqliteDecisionLog(path, index_every=10_000) as old:
        records = fill(old, make_record, 30)
    with raw(path) as conn:  # back to version 2, as the previous release left files
        conn.executescript("""
            DROP TABLE principal_index; DROP TABLE index_state;
            DROP TABLE admin_state; DROP TABLE admin_state_meta;
            CREATE INDEX decisions_principal_ts ON decisions (principal, ts);
            PRAGMA user_version = 2;""")
    with SqliteDecisionLog(path) as log:
        assert watermark(path) == 30
        assert ids_of(log, DecisionFilter(principal=PRINCIPALS[2])) == \
            expected_ids(records, PRINCIPALS[2])
        assert log.verify().ok
        log.append_sync(make_record(principal=PRINCIPALS[2]))
    with raw(path) as conn:
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(decisions)")}
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert "decisions_principal_ts" not in indexes
