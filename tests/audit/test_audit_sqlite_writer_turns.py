"""Appenders of one SQLite file take turns (pdp.audit.sqlite.writer_turns).

Attacked here: a turn another process holds (stuck, then let go), one that dies holding it
(``kill -9``), a hint that lies (a writer killed between its commit and its hint, or one
that does not take turns), and appenders in two processes at once, each acknowledged record
checked after a ``kill -9``.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pdp.audit import AuditUnavailable, SqliteDecisionLog
from pdp.audit.sqlite import log as sqlite_log_module
from pdp.audit.sqlite.writer_turns import WriterTurns
from tests.audit.conftest import MakeRecord

BOUND_S = 0.3


def turns_file(path: Path) -> Path:
    return path.with_name(path.name + "-writer")


@contextmanager
def held_turn(path: Path) -> Iterator[None]:
    """Hold the file's turn as a stuck appender in another process would."""
    fd = os.open(turns_file(path), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # lets go of the lock


@pytest.fixture
def redone(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts batches redone from the head on disk (their first seq was taken)."""
    calls: list[int] = []
    real = sqlite_log_module.stored_records

    def counting(*args: Any) -> dict[str, dict[str, Any]]:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(sqlite_log_module, "stored_records", counting)
    return calls


def test_two_appenders_on_one_file_take_turns_and_never_redo_a_batch(
        tmp_path: Path, make_record: MakeRecord, redone: list[int]) -> None:
    path = tmp_path / "decisions.db"
    with SqliteDecisionLog(path) as a, SqliteDecisionLog(path) as b:
        for i in range(20):  # each append follows one of the other log's
            (a if i % 2 else b).append_sync(make_record())

        def burst(log: SqliteDecisionLog) -> None:
            asyncio.run(_gather(log, [make_record() for _ in range(100)]))

        threads = [threading.Thread(target=burst, args=(log,)) for log in (a, b, a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r["seq"] for r in a.iter_all()] == list(range(1, 421))
        assert a.verify().ok
    assert redone == []  # each one knew from the hint that the other had appended


async def _gather(log: SqliteDecisionLog, records: list[dict[str, Any]]) -> None:
    await asyncio.gather(*(log.append(r) for r in records))


def test_a_hint_that_lies_costs_a_redo_never_a_fork_of_the_chain(
        tmp_path: Path, make_record: MakeRecord, redone: list[int]) -> None:
    path = tmp_path / "decisions.db"
    with SqliteDecisionLog(path) as a, SqliteDecisionLog(path) as b:
        first = a.append_sync(make_record())
        b.append_sync(make_record())
        # As if b had been killed between its commit and its hint, or did not take turns:
        # the hint still says a's seq, and a's cached head is stale.
        liar = WriterTurns(turns_file(path), waiting=_nothing())
        with liar:
            liar.committed(first["seq"])
        liar.close()
        third = a.append_sync(make_record())
    assert redone == [1]
    assert third["seq"] == 3
    with SqliteDecisionLog(path) as again:
        assert again.verify().ok


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def test_a_caller_refused_while_another_process_holds_the_turn_is_never_written(
        tmp_path: Path, make_record: MakeRecord) -> None:
    path = tmp_path / "decisions.db"
    with SqliteDecisionLog(path, commit_timeout_s=BOUND_S) as log:
        before = log.append_sync(make_record())
        stuck_sync, stuck_async = make_record(), make_record()
        with held_turn(path):
            with pytest.raises(AuditUnavailable, match="did not commit within"):
                log.append_sync(stuck_sync)
            with pytest.raises(AuditUnavailable, match="did not commit within"):
                asyncio.run(log.append(stuck_async))
            time.sleep(BOUND_S * 1.5)  # the writer is still waiting for its turn
            health = log.commit_health()
            assert not health.ok and "pending" in (health.error or "")
        # Let go: the writer takes its turn and finds both callers gone.
        after = log.append_sync(make_record())
        stored = [r["decision_id"] for r in log.iter_all()]
        assert stored == [before["decision_id"], after["decision_id"]]
        assert after["seq"] == 2 and after["prev_hash"] == before["hash"]
        assert log.commit_health().ok and log.verify().ok


CHILD = """
import sys
from pathlib import Path
from pdp.audit import SqliteDecisionLog
import uuid_utils
log = SqliteDecisionLog(Path(sys.argv[1]))
i = 0
while True:
    record = {"decision_id": str(uuid_utils.uuid7()), "kind": "decision",
              "timestamp": "2026-11-23T13:00:00.000000Z", "principal": "spiffe://x/child",
              "action": "read", "resource": "r", "decision": "allow", "reasons": [],
              "reason_codes": [], "errors": [], "n": i}
    log.append_sync(record)
    print(record["decision_id"], flush=True)  # acknowledged
    i += 1
"""


def test_appenders_in_two_processes_keep_every_acknowledged_record_across_kill_9(
        tmp_path: Path, make_record: MakeRecord) -> None:
    path = tmp_path / "decisions.db"
    SqliteDecisionLog(path).close()  # the schema exists before both start
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE,
                             text=True, cwd=Path(__file__).resolve().parents[2])
    assert child.stdout is not None
    acknowledged = [child.stdout.readline().strip()]  # the child appends now
    mine: list[str] = []
    with SqliteDecisionLog(path) as log:
        def read_acks() -> None:
            assert child.stdout is not None
            for line in child.stdout:
                acknowledged.append(line.strip())

        reader = threading.Thread(target=read_acks)
        reader.start()
        for i in range(150):
            mine.append(log.append_sync(make_record())["decision_id"])
            if i == 100:  # mid-stream, perhaps in its turn: no shutdown of any kind
                os.kill(child.pid, signal.SIGKILL)
        child.wait()
        reader.join()
        # The kernel let go of the dead child's turn: this log goes on alone.
        mine.append(log.append_sync(make_record())["decision_id"])
    with SqliteDecisionLog(path) as again:
        stored = {r["decision_id"] for r in again.iter_all()}
        assert again.verify().ok
    acknowledged = [a for a in acknowledged if a]
    assert len(acknowledged) > 10, "the child did not get going"
    assert not set(acknowledged) - stored and not set(mine) - stored
