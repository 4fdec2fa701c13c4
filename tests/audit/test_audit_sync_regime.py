"""Where the ``-wal`` is synced at ``durability = "power"`` (pdp.audit.sqlite.sync_regime):
SQLite's sync in its commit while a log appends alone, the log's own fdatasync after the
turn while another process appends. Attacked: the rule (pipelined at the first turn that
finds another appended, back after ``quiet_turns`` quiet turns, a meeting restarting the
count), and in a real log that the level the writer connection commits at is the one
the sync after the turn follows, batch by batch, on the plain, the redo and the spool's
path. (The order of syncs and acks from strace: tests/audit/test_audit_wal_sync.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pdp.audit import SqliteDecisionLog
from pdp.audit.sqlite.sync_regime import QUIET_TURNS, SyncRegime
from pdp.audit.sqlite.writer_turns import WriterTurns
from tests.audit.conftest import MakeRecord
from tests.audit.test_audit_sqlite_writer_turns import _nothing, redone, turns_file

__all__ = ["redone"]  # the fixture, used here


def test_the_rule_pipelines_at_a_meeting_and_returns_after_a_quiet_stretch() -> None:
    regime = SyncRegime(quiet_turns=3)
    assert [regime.turn(False) for _ in range(5)] == [False] * 5  # alone: SQLite's sync
    assert regime.turn(True) is True  # another appended: pipelined at once
    assert [regime.turn(False) for _ in range(2)] == [True, True]
    assert regime.turn(True) is True  # met again: the quiet count starts over
    assert [regime.turn(False) for _ in range(3)] == [True, True, False]  # 3 quiet turns
    assert [regime.turn(False) for _ in range(3)] == [False] * 3
    assert SyncRegime().quiet_turns == QUIET_TURNS
    with pytest.raises(ValueError):
        SyncRegime(quiet_turns=0)


class CountingSync:
    """``os.fdatasync``, counted."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, fd: int) -> None:
        self.calls += 1
        os.fdatasync(fd)


def level(log: SqliteDecisionLog) -> int:
    """``PRAGMA synchronous`` of the writer connection (1 NORMAL, 2 FULL); read between
    batches, while the writer thread waits."""
    assert log._conn is not None
    value: int = log._conn.execute("PRAGMA synchronous").fetchone()[0]
    return value


def test_the_connection_s_level_and_the_sync_after_the_turn_go_together(
        tmp_path: Path, make_record: MakeRecord, redone: list[int]) -> None:
    path = tmp_path / "decisions.db"
    with (SqliteDecisionLog(path, quiet_turns=3) as one,
          SqliteDecisionLog(path, quiet_turns=3) as two):
        synced = CountingSync()
        one._fdatasync = synced
        one.append_sync(make_record())
        assert level(one) == 2 and synced.calls == 0  # alone: SQLite syncs in its commit
        two.append_sync(make_record())
        one.append_sync(make_record())  # finds two's record: pipelined
        assert level(one) == 1 and synced.calls == 1
        one.append_many_sync([make_record() for _ in range(3)])  # the spool's group path
        assert level(one) == 1 and synced.calls == 2
        # The redo path: a hint that lies (two appended, the hint says nobody did) makes
        # the insert collide and the batch is redone at the same level, synced after.
        two.append_sync(make_record())
        liar = WriterTurns(turns_file(path), waiting=_nothing())
        with liar:
            liar.committed(one._seq)
        liar.close()
        one.append_sync(make_record())  # quiet turn 2 of 3: still pipelined
        assert redone == [1] and level(one) == 1 and synced.calls == 3
        one.append_sync(make_record())  # quiet turn 3 of 3: SQLite's sync again
        assert level(one) == 2 and synced.calls == 3
        one.append_sync(make_record())
        assert level(one) == 2 and synced.calls == 3
        report = one.verify()
        assert report.ok and report.last_seq == 10
