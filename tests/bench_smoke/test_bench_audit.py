"""The decision-log benchmark runs end to end on tiny inputs (no timing asserted here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import audit_log
from pdp.audit import SqliteDecisionLog
from pdp.audit.sqlite_index import watermark
from pdp.audit.sqlite_schema import connect


def test_throughput_rows_name_both_baselines_and_the_verdict(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_log, "RECORDS", 600)
    monkeypatch.setattr(audit_log, "ROUNDS", 1)
    lines = audit_log.sqlite_throughput(tmp_path)
    assert [line.split(" | ")[0] for line in lines] == [
        "| SQLite, synchronous=FULL, 256 tasks", "| SQLite, synchronous=FULL, 1024 tasks",
        "| SQLite, synchronous=NORMAL, 1024 tasks"]
    for line in lines:
        cells = line.strip("|").split("|")
        assert len(cells) == 9
        assert "≥ 0.50: met" in cells[6] or "≥ 0.50: **not met**" in cells[6]


def test_the_query_log_is_a_verifiable_chain_with_its_principal_index_filled(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "q.db"
    audit_log.build_query_log(path, n=3000)
    with SqliteDecisionLog(path) as log:
        assert log.verify().ok and log.head()[0] == 3000
    conn = connect(path, busy_timeout_ms=1000)
    try:
        assert watermark(conn) == 3000
    finally:
        conn.close()
    monkeypatch.setattr(audit_log, "QUERIES", 5)
    lines = audit_log.query_latencies(path)
    assert len(lines) == 3 and all(line.startswith("| principal + ") for line in lines)
    assert "principal_index" in audit_log.query_plan(path)
    monkeypatch.setattr(audit_log, "INDEX_EVERY", 500)
    row = audit_log.tail_query_latencies(path)
    assert row.startswith("| principal + the last day, the newest 499 records not yet indexed")
    conn = connect(path, busy_timeout_ms=1000)
    try:
        assert watermark(conn) == 3000  # caught up again afterwards
    finally:
        conn.close()
