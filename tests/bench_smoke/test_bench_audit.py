"""The decision-log benchmark runs end to end on tiny inputs (no timing asserted here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import audit_log
from pdp.audit import SqliteDecisionLog
from pdp.audit.sqlite.principal_index import watermark
from pdp.audit.sqlite.schema import connect

pytestmark = pytest.mark.slow


def test_throughput_rows_name_the_baselines_and_the_verdict(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_log, "RECORDS", 600)
    monkeypatch.setattr(audit_log, "ROUNDS", 1)
    lines = audit_log.sqlite_throughput(tmp_path)
    assert [line.split(" | ")[0] for line in lines] == [
        "| SQLite, synchronous=FULL, 256 tasks", "| SQLite, synchronous=FULL, 1024 tasks",
        "| SQLite, synchronous=NORMAL, 1024 tasks"]
    for line in lines:
        cells = line.strip("|").split("|")
        assert len(cells) == 11
        assert cells[6].strip().startswith(("≥ 30,000/s: met;", "≥ 30,000/s: **not met**;"))
        assert any(f"ours / plain {w} 0.375–0.5" in cells[6]
                   for w in ("above", "inside", "**below**"))
    assert list(tmp_path.iterdir()) == []  # every measured file removed at once


def test_the_verdict_reads_the_target_and_the_share_of_plain_inserts() -> None:
    def rate(per_s: float) -> audit_log.Rate:
        return audit_log.Rate(int(per_s), 1.0, 0.5)

    def verdict(ours: float, plain: float) -> str:
        return audit_log.row("x", rate(ours), [1.0], rate(plain), rate(plain), None,
                             target=True).split(" | ")[6]

    assert verdict(31_000, 80_000) == "≥ 30,000/s: met; ours / plain inside 0.375–0.5"
    assert verdict(29_000, 50_000) == "≥ 30,000/s: **not met**; ours / plain above 0.375–0.5"
    assert verdict(40_000, 120_000) == "≥ 30,000/s: met; ours / plain **below** 0.375–0.5"
    assert audit_log.row("x", rate(49_600), [1.0], rate(100_000), rate(100_000), None,
                         target=True).split(" | ")[5] == "0.49"  # floored, not rounded up


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
