"""The writer tells a failed write by its first outcome (``GroupCommitLog._timed_write``):
attack that with a batch led by a refused duplicate (not a failure) and a write that fails
(a failure, until a later write succeeds)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from pdp.audit import SqliteDecisionLog
from pdp.audit.errors import AuditUnavailable, DuplicateDecision
from pdp.audit.sqlite import log as sqlite_log_module
from tests.audit.conftest import MakeRecord


def test_a_batch_led_by_a_refused_duplicate_leaves_the_log_healthy(
        tmp_path: Path, make_record: MakeRecord) -> None:
    with SqliteDecisionLog(tmp_path / "log.db") as log:
        first = make_record()
        log.append_sync(first)
        clash = {**first, "explanation": "other content"}
        later = make_record()

        async def both() -> list[Any]:
            return await asyncio.gather(log.append(clash), log.append(later),
                                        return_exceptions=True)

        outcomes = asyncio.run(both())
        assert isinstance(outcomes[0], DuplicateDecision)
        assert outcomes[1]["decision_id"] == later["decision_id"]
        assert log.commit_health().ok
        with pytest.raises(DuplicateDecision):  # alone: the last write's only outcome
            log.append_sync(clash)
        assert log.commit_health().ok
        assert log.verify().ok


def test_a_failed_write_marks_the_log_unavailable_until_one_succeeds(
        tmp_path: Path, make_record: MakeRecord, monkeypatch: pytest.MonkeyPatch) -> None:
    with SqliteDecisionLog(tmp_path / "log.db") as log:
        real = sqlite_log_module.insert_atomically

        def failing(conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(sqlite_log_module, "insert_atomically", failing)
        with pytest.raises(AuditUnavailable):
            log.append_sync(make_record())
        health = log.commit_health()
        assert not health.ok and "disk I/O error" in (health.error or "")
        monkeypatch.setattr(sqlite_log_module, "insert_atomically", real)
        stored = log.append_sync(make_record())
        assert stored["seq"] == 1  # the failed record was not stored
        assert log.commit_health().ok
