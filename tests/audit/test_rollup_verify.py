"""Verification covers the overview's hourly rollups: an edited rollup row fails
``verify`` naming exactly its hour, rows not yet caught up are not reported, and a
rebuild repairs it (SQLite and a real PostgreSQL in a schema of its own)."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pdp.audit import SqliteDecisionLog, rollups
from pdp.audit.auditing.auditor import verify_store
from pdp.audit.records import normalize_ts
from pdp.audit.store import DecisionStore
from tests.audit.pgschema import postgres_schema, require_postgres
from tests.audit.test_audit_rollups import random_record

Exec = Callable[[str], list[tuple[Any, ...]]]


@pytest.fixture(params=["sqlite", "postgres"])
def log(request: pytest.FixtureRequest,
        tmp_path: Path) -> Iterator[tuple[DecisionStore, Exec, list[dict[str, Any]]]]:
    """A log of 300 records with its rollup caught up, a way to run SQL on it behind
    the store's back (the tamperer), and the records appended."""
    rng = random.Random(16)
    records = sorted((random_record(rng, i) for i in range(300)), key=lambda r: r["timestamp"])
    with ExitStack() as stack:
        if request.param == "postgres":
            from pdp.audit.postgres import PostgresDecisionLog

            require_postgres()
            dsn = stack.enter_context(postgres_schema("pdp_hroll"))
            store: DecisionStore = PostgresDecisionLog(dsn)
            pg = stack.enter_context(psycopg.connect(dsn, autocommit=True))

            def run(sql: str) -> list[tuple[Any, ...]]:
                cur = pg.execute(sql.replace("?", "%s"))
                return cur.fetchall() if cur.description else []
        else:
            store = SqliteDecisionLog(tmp_path / "decisions.db")
            lite = stack.enter_context(closing(sqlite3.connect(tmp_path / "decisions.db")))

            def run(sql: str) -> list[tuple[Any, ...]]:
                rows = lite.execute(sql).fetchall()
                lite.commit()
                return rows
        for record in records:
            store.append_sync(dict(record))
        rollups.prepare_store(store)
        yield store, run, records
        store.close()


def _hours_of(report: dict[str, Any]) -> list[str]:
    return [d["hour"] for d in report["rollups"]["first"]]


def test_an_untouched_rollup_verifies(log) -> None:
    store, run, _ = log
    report = verify_store(store)
    assert report["ok"] is True, report
    assert report["rollups"]["compared"] is True and report["rollups"]["ok"] is True
    assert report["rollups"]["hours"] == run("SELECT count(*) FROM overview_hourly")[0][0] > 0
    assert report["rollups"]["differing_hours"] == 0


def test_a_lowered_deny_count_is_reported_for_exactly_its_hour(log) -> None:
    store, run, _ = log
    hour, deny = run("SELECT hour, deny FROM overview_hourly WHERE deny > 1 "
                     "ORDER BY hour LIMIT 1")[0]
    # the tamperer also fixes the watermark's total, so the overview would read the lie
    run(f"UPDATE overview_hourly SET deny = deny - 1 WHERE hour = '{hour}'")
    run("UPDATE overview_rollup_state SET counted = counted - 1")
    report = verify_store(store)
    assert report["ok"] is False and report["problem"] == "rollup mismatch"
    assert _hours_of(report) == [hour] and report["rollups"]["differing_hours"] == 1
    diff = report["rollups"]["first"][0]
    assert diff["expected"] == {"overview_hourly": {"deny": deny}}
    assert diff["stored"] == {"overview_hourly": {"deny": deny - 1}}
    assert hour in report["detail"] and "pdp audit rebuild-rollups" in report["detail"]
    assert report["repair"] == "pdp audit rebuild-rollups"
    # the chain itself is fine: the chain fields say so
    assert report["first_broken_seq"] is None


def test_a_deleted_denied_principal_and_a_forged_reason_are_reported(log) -> None:
    store, run, _ = log
    hour, principal, n = run("SELECT hour, principal, n FROM overview_hourly_denied "
                             "ORDER BY hour DESC LIMIT 1")[0]
    run(f"DELETE FROM overview_hourly_denied WHERE hour = '{hour}' "
        f"AND principal = '{principal}'")
    first = run("SELECT min(hour) FROM overview_hourly")[0][0]
    run(f"INSERT INTO overview_hourly_reasons (hour, code, n) VALUES ('{first}', 'forged', 3)")
    report = verify_store(store)
    assert report["problem"] == "rollup mismatch"
    assert _hours_of(report) == sorted({hour, first})
    by_hour = {d["hour"]: d for d in report["rollups"]["first"]}
    assert by_hour[hour]["expected"]["overview_hourly_denied"] == {principal: n}
    assert by_hour[hour]["stored"]["overview_hourly_denied"] == {principal: 0}
    assert by_hour[first]["expected"]["overview_hourly_reasons"] == {"forged": 0}
    assert by_hour[first]["stored"]["overview_hourly_reasons"] == {"forged": 3}


def test_records_past_the_watermark_are_not_reported(log) -> None:
    store, run, records = log
    through = run("SELECT through_seq FROM overview_rollup_state")[0][0]
    # new decisions in hours the rollup already holds, not caught up yet
    for record in records[:20]:
        store.append_sync({**record, "decision_id": record["decision_id"] + "-late",
                           "timestamp": records[-1]["timestamp"]})
    assert run("SELECT through_seq FROM overview_rollup_state")[0][0] == through
    report = verify_store(store)
    assert report["ok"] is True, report["detail"]
    assert report["rollups"]["through_seq"] == through


def test_a_rebuild_repairs_the_rollup(log) -> None:
    store, run, _ = log
    run("UPDATE overview_hourly SET allow = allow + 5 WHERE hour = "
        "(SELECT max(hour) FROM overview_hourly)")
    assert verify_store(store)["problem"] == "rollup mismatch"
    state = rollups.rebuild_store(store)
    assert state is not None
    report = verify_store(store)
    assert report["ok"] is True and report["rollups"]["ok"] is True
    assert report["rollups"]["through_seq"] == state.through_seq


def test_a_chain_break_is_reported_before_the_rollups(log) -> None:
    """A rewritten decision row breaks the chain: that is the report's problem, and the
    rollup comparison (against rows that are no longer trusted) does not mask it."""
    store, run, _ = log
    run("UPDATE decisions SET decision = 'allow' WHERE seq = "
        "(SELECT min(seq) FROM decisions WHERE decision = 'deny')")
    report = verify_store(store)
    assert report["ok"] is False and report["problem"] != "rollup mismatch"


def test_no_rollup_yet_is_not_a_failure(tmp_path: Path) -> None:
    store = SqliteDecisionLog(tmp_path / "d.db")
    store.append_sync(random_record(random.Random(1), 1))
    report = verify_store(store)
    assert report["ok"] is True and report["rollups"]["compared"] is False
    store.close()


def test_a_forged_watermark_skips_the_check_and_the_overview_alike(log) -> None:
    """Moving the watermark's ``from_seq`` makes the rollup look stale: verify then does
    not compare it, and that is safe only because the overview stops reading it too —
    an edited hour hidden that way never reaches the charts."""
    store, run, records = log
    run("UPDATE overview_hourly SET deny = deny + 7")
    run("UPDATE overview_rollup_state SET from_seq = from_seq + 1")
    report = verify_store(store)
    assert report["ok"] is True and report["rollups"]["compared"] is False
    assert "stale" in report["rollups"]["note"]
    with rollups.store_connection(store) as found:
        assert found is not None
        conn, dialect = found
        since, until = normalize_ts(records[0]["timestamp"]), "2100-01-01T00:00:00.000000Z"
        assert rollups.bucket_prefix(since, until) < 16  # a range the rollup would serve
        assert rollups._rollup_backed(conn, dialect, since, until, 13, tops=False) is None
    denies = sum(1 for r in records if r["kind"] == "decision" and r["decision"] != "allow")
    assert rollups.counts(store, since, until)[1] == denies
