"""The WAL's copy-back length (``schema.WAL_AUTOCHECKPOINT``, issue 16) and what must not
change with it: a commit is on disk before its caller hears of it, however long the WAL
has grown since its last copy-back.

- every writer connection on the file copies back at the configured length, and does
  copy back (a WAL that never did would grow without end), and not at SQLite's 1,000;
- a process killed with SIGKILL right after its appends were acknowledged, the WAL not
  yet copied back, leaves every acknowledged record readable and the chain whole;
- that a commit is synced before its acknowledgement, whatever the WAL's length, is
  read from strace in ``test_audit_wal_sync`` (which also tells ``NORMAL`` from ``FULL``).
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

from pdp.audit import SqliteDecisionLog
from pdp.audit.sqlite.admin_state import SqliteAdminState
from pdp.audit.sqlite.schema import WAL_AUTOCHECKPOINT
from tests.audit.conftest import MakeRecord

REPO = Path(__file__).resolve().parents[2]


def wal_frames(db: Path) -> int:
    """Frames of the WAL's current generation: those after its header whose salts match
    it (SQLite writes a restarted WAL from its start with new salts; older frames stay
    behind them in the file until overwritten)."""
    wal = db.with_name(db.name + "-wal")
    data = wal.read_bytes() if wal.exists() else b""
    if len(data) < 32:
        return 0
    page_size = struct.unpack(">I", data[8:12])[0]
    salts = data[16:24]
    frames, offset = 0, 32
    while offset + 24 + page_size <= len(data) and data[offset + 8:offset + 16] == salts:
        frames += 1
        offset += 24 + page_size
    return frames


def test_every_writer_connection_copies_back_at_the_configured_length(tmp_path: Path) -> None:
    path = tmp_path / "decisions.db"
    with SqliteDecisionLog(path) as log:
        assert log._conn is not None
        assert log._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == WAL_AUTOCHECKPOINT
    state = SqliteAdminState(path)  # shares the file: it would copy back at its own length
    try:
        conn = state._connection()
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == WAL_AUTOCHECKPOINT
    finally:
        state._close()
    assert WAL_AUTOCHECKPOINT > 1000  # SQLite's default, which this replaces


def wal_header(db: Path) -> tuple[bytes, int]:
    """The WAL's salts (new ones each time it starts over) and the frames its file holds."""
    wal = db.with_name(db.name + "-wal")
    with wal.open("rb") as f:
        header = f.read(32)
    page_size = struct.unpack(">I", header[8:12])[0]
    return header[16:24], (wal.stat().st_size - 32) // (24 + page_size)


def test_the_wal_is_copied_back_once_it_passes_the_length_and_not_before(
        tmp_path: Path, make_record: MakeRecord) -> None:
    path = tmp_path / "decisions.db"
    with SqliteDecisionLog(path, synchronous="NORMAL") as log:  # copy-back is the same at FULL
        log.append_sync(make_record())
        start_size = path.stat().st_size
        salts, frames = wal_header(path)  # a fresh file: the WAL's first generation
        appended = 1
        while frames < 1500:  # past SQLite's default length: no copy-back yet
            log.append_sync(make_record())
            appended += 1
            assert wal_header(path)[0] == salts
            frames = wal_header(path)[1]
        assert path.stat().st_size == start_size  # nothing copied into the database file
        while True:  # the commit that takes the WAL past the length copies it back
            log.append_sync(make_record())
            appended += 1
            now_salts, now = wal_header(path)
            if now_salts != salts:  # the next commit started the WAL over
                break
            frames = now
            assert frames < WAL_AUTOCHECKPOINT + 200, "the WAL was never copied back"
        assert frames >= WAL_AUTOCHECKPOINT
        assert wal_frames(path) < 100
        assert path.stat().st_size > start_size
        report = log.verify()
        assert report.ok and report.last_seq == appended


APPENDER = textwrap.dedent("""
    import json, os, signal, sys
    from pathlib import Path
    from pdp.audit import SqliteDecisionLog
    path, synchronous, n, then = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    records = [json.loads(line) for line in sys.stdin]
    log = SqliteDecisionLog(path, synchronous=synchronous)
    for record in records[:n]:
        stored = log.append_sync(record)
        os.write(1, ("ack " + stored["decision_id"] + "\\n").encode())
    if then == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    log.close()
""")


def run_appender(args: list[str],
                 records: list[dict[str, object]]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", APPENDER, *args],
        input="".join(json.dumps(r) + "\n" for r in records), capture_output=True, text=True,
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120, check=False)


def test_sigkill_with_a_long_wal_keeps_every_acknowledged_record(
        tmp_path: Path, make_record: MakeRecord) -> None:
    path = tmp_path / "decisions.db"
    records = [make_record() for _ in range(300)]  # ~2,000 WAL pages: none copied back
    done = run_appender([str(path), "FULL", "300", "kill"], records)
    assert done.returncode == -signal.SIGKILL, done.stderr
    acknowledged = [line.split()[1] for line in done.stdout.splitlines()]
    assert acknowledged == [r["decision_id"] for r in records]
    assert wal_frames(path) > 1000  # the records live only in the WAL
    with SqliteDecisionLog(path) as log:
        report = log.verify()
        assert report.ok and report.last_seq == len(acknowledged)
        for decision_id in acknowledged:
            assert log.get(decision_id) is not None

