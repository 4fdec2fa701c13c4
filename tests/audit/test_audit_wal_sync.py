"""At ``durability = "power"`` (``synchronous = FULL``) the SQLite log lets SQLite sync in
its commit while it appends alone, and while another process appends to the same file it
commits at NORMAL in its writer's turn and fdatasyncs the ``-wal`` file after the turn
(pdp.audit.sqlite.sync_regime, pdp.audit.sqlite.wal_file,
``SqliteDecisionLog._made_durable``). Attacked here:

- the order, from strace of real appenders: before every acknowledgement, in either
  regime, an fdatasync of the ``-wal`` began after that process's last write to it (the
  batch's commit) and completed; one appender alone never syncs through the log's own
  descriptor (SQLite's sync in the commit does it); two appenders on one file, once they
  met, sync through the log's descriptor after the turn was let go, for every later ack;
- the regime goes back to SQLite's after a quiet stretch, and the level the connection
  commits at is the one the sync after the turn follows;
- the file synced is the one SQLite writes: the same inode as SQLite's own descriptors
  on ``-wal`` and as the path, while other connections (this process's and another's)
  open and close, across a copy-back that starts the WAL over, with two logs on one
  file, and after the writer reconnects as the file's last connection (SQLite deletes
  the ``-wal`` then and makes a new one);
- a ``-wal`` deleted behind the log's back refuses the batch;
- an fdatasync that fails (EIO) answers every caller of its batch ``AuditUnavailable``,
  never "stored", and the log refuses every later append until it is opened again.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pdp.audit import AuditUnavailable, SqliteDecisionLog
from pdp.audit.sqlite.admin_state import SqliteAdminState
from tests.audit.conftest import MakeRecord
from tests.audit.test_audit_wal_checkpoint import wal_header

REPO = Path(__file__).resolve().parents[2]


def wal_of(db: Path) -> Path:
    return db.with_name(db.name + "-wal")


def open_wal_files(db: Path, ignore: int = -1) -> set[tuple[int, int]]:
    """``(st_dev, st_ino)`` of every descriptor of this process on ``<db>-wal`` (SQLite's
    and the log's; not the test's own ``ignore``), deleted files included."""
    wal = str(wal_of(db))
    found: set[tuple[int, int]] = set()
    for name in os.listdir("/proc/self/fd"):
        if int(name) == ignore:
            continue
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
            if target in (wal, f"{wal} (deleted)"):
                st = os.fstat(int(name))
                found.add((st.st_dev, st.st_ino))
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
    return found


def assert_syncs_the_file_sqlite_writes(log: SqliteDecisionLog, ignore: int = -1) -> None:
    assert log._wal is not None
    st = os.stat(wal_of(log.path))
    assert os.fstat(log._wal.fd).st_nlink == 1
    assert open_wal_files(log.path, ignore) == {log._wal.identity()} == {(st.st_dev, st.st_ino)}


# -- the order of writes, syncs and acknowledgements (strace) ----------------------------

APPENDER = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    from pdp.audit import SqliteDecisionLog
    path, synchronous = Path(sys.argv[1]), sys.argv[2]
    log = SqliteDecisionLog(path, synchronous=synchronous)
    if len(sys.argv) > 3:  # a barrier: start appending once every appender has opened
        barrier, n = Path(sys.argv[3]), int(sys.argv[4])
        (barrier / str(os.getpid())).touch()
        while len(list(barrier.iterdir())) < n:
            pass
    for line in sys.stdin:
        stored = log.append_sync(json.loads(line))
        os.write(1, ("ack " + stored["decision_id"] + "\\n").encode())
    log.close()
""")

CALL = re.compile(r"^(\d+) +(?:<\.\.\. (\w+) resumed>|(\w+)\()(.*)$")


@dataclass
class Order:
    """What one appender's trace says, per acknowledgement."""

    acks: int = 0
    unsynced: list[int] = field(default_factory=list)  # acks with no sync after the commit
    pipelined: list[int] = field(default_factory=list)  # synced by the log after the turn
    own_syncs: int = 0  # good syncs through the log's own descriptor (O_RDONLY), in all


def order_of(trace: str) -> Order:
    """Read ``strace -f -y -e trace=pwrite64,write,fdatasync,fsync,flock,openat`` of one
    appender.

    For each ``ack`` written to stdout: did an fdatasync (or fsync) of the ``-wal`` begin
    after the last completed write to the ``-wal`` (the batch's commit; also the header
    when the WAL starts over) and complete with 0 before the ack? And was one of those
    through the log's own descriptor (the ``-wal`` opened ``O_RDONLY``: SQLite opens it
    read-write) and begun after the last ``LOCK_UN`` of the turns file, outside the turn?
    """
    order = Order()
    started: dict[str, tuple[str, int, str]] = {}  # tid -> (call, line, its arguments)
    last_write = last_unlock = -1  # lines where the last -wal write and unlock completed
    own: set[int] = set()  # descriptors the log opened on the -wal (O_RDONLY)
    syncs: list[tuple[int, bool]] = []  # (line began, through own) of good syncs since ack
    for i, line in enumerate(trace.splitlines()):
        m = CALL.match(line.rstrip())
        if m is None:
            continue
        tid, resumed, name, rest = m.groups()
        if name is not None:  # a call begins (and ends on this line unless unfinished)
            if name == "write" and rest.startswith("1<") and '"ack ' in rest:
                order.acks += 1
                after = [(start, mine) for start, mine in syncs if start > last_write]
                if not after:
                    order.unsynced.append(order.acks)
                elif any(mine and start > last_unlock for start, mine in after):
                    order.pipelined.append(order.acks)
                syncs = []
                continue
            if rest.endswith("<unfinished ...>"):
                started[tid] = (name, i, rest)
                continue
            start, args = i, rest
        else:
            name, start, args = started.pop(tid)
            assert name == resumed, line
        on_wal = re.match(r"\d+<[^>]*-wal>", args) is not None
        if name in ("pwrite64", "write") and on_wal and re.search(r"= \d+$", rest):
            last_write = i
        elif name in ("fdatasync", "fsync") and on_wal and rest.endswith("= 0"):
            mine = int(args.split("<", 1)[0]) in own
            syncs.append((start, mine))
            order.own_syncs += mine
        elif name == "openat" and '-wal"' in args and "O_RDONLY" in args:
            opened = re.search(r"= (\d+)<", rest)
            if opened is not None:
                own.add(int(opened.group(1)))
        elif name == "flock" and "-writer>" in args and "LOCK_UN" in args:
            last_unlock = i
    return order


def run_traced(path: Path, records: list[dict[str, object]], trace: Path,
               synchronous: str = "FULL",
               barrier: tuple[Path, int] | None = None) -> subprocess.Popen[str]:
    feed = trace.with_suffix(".jsonl")
    feed.write_text("".join(json.dumps(r) + "\n" for r in records))
    with feed.open() as stdin:
        return subprocess.Popen(
            ["strace", "-f", "-qq", "-y", "-o", str(trace),
             "-e", "trace=pwrite64,write,fdatasync,fsync,flock,openat",
             sys.executable, "-c", APPENDER, str(path), synchronous,
             *([str(barrier[0]), str(barrier[1])] if barrier else [])],
            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})


def require_strace() -> None:
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")


def traced_output(proc: subprocess.Popen[str]) -> str:
    """A traced appender's stdout once it exited 0; skipped where strace cannot trace."""
    out, err = proc.communicate(timeout=120)
    if proc.returncode != 0 and "ptrace" in err:
        pytest.skip(f"strace cannot trace here: {err.strip()[:200]}")
    assert proc.returncode == 0, err
    return out


def test_every_acknowledgement_follows_an_fdatasync_of_the_wal_begun_after_its_commit(
        tmp_path: Path, make_record: MakeRecord) -> None:
    """Two appenders on one file, each traced: every ack of each is preceded by an
    fdatasync of the ``-wal`` that began after that appender's commit write; and once
    each has met the other (its first pipelined ack), every later ack follows a sync
    through the log's own descriptor begun after it let go of the turn."""
    require_strace()
    path = tmp_path / "decisions.db"
    SqliteDecisionLog(path).close()  # the schema first: the two then only append
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [run_traced(path, [make_record() for _ in range(150)], tmp_path / f"trace{n}",
                        barrier=(barrier, 2))
             for n in range(2)]
    for n, proc in enumerate(procs):
        assert traced_output(proc).count("ack ") == 150
        order = order_of((tmp_path / f"trace{n}").read_text())
        assert order.acks == 150
        assert order.unsynced == [], f"acks without a sync after their commit: {order}"
        assert order.pipelined, f"never pipelined with another appender: {order}"
        met = order.pipelined[0]  # fewer than QUIET_TURNS turns follow: it stays pipelined
        assert met <= 100 and order.pipelined == list(range(met, 151)), order
    with SqliteDecisionLog(path) as log:
        report = log.verify()
        assert report.ok and report.last_seq == 300


def test_one_appender_alone_lets_sqlite_sync_in_its_commit(
        tmp_path: Path, make_record: MakeRecord) -> None:
    """Alone on its file the log never syncs through its own descriptor, and every ack
    still follows a good fdatasync of the ``-wal`` (SQLite's, in the commit) begun after
    the commit's write."""
    require_strace()
    path = tmp_path / "decisions.db"
    SqliteDecisionLog(path).close()
    proc = run_traced(path, [make_record() for _ in range(60)], tmp_path / "trace")
    assert traced_output(proc).count("ack ") == 60
    order = order_of((tmp_path / "trace").read_text())
    assert order.acks == 60
    assert order.unsynced == [], f"acks without a sync after their commit: {order}"
    assert order.own_syncs == 0 and order.pipelined == [], order


def test_the_order_check_tells_an_unsynced_log_from_a_synced_one(
        tmp_path: Path, make_record: MakeRecord) -> None:
    """``process`` (NORMAL) acknowledges without a sync: the same reading says so."""
    require_strace()
    path = tmp_path / "decisions.db"
    SqliteDecisionLog(path, synchronous="NORMAL").close()
    proc = run_traced(path, [make_record() for _ in range(20)], tmp_path / "trace", "NORMAL")
    traced_output(proc)
    order = order_of((tmp_path / "trace").read_text())
    assert order.acks == 20 and len(order.unsynced) == 20


# -- the file synced is the file SQLite writes ---------------------------------------------

OTHER_PROCESS = textwrap.dedent("""
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("CREATE TABLE IF NOT EXISTS other (x)")
    conn.execute("INSERT INTO other VALUES (1)")
    conn.execute("COMMIT")
    conn.close()  # not the last connection while the log's writer is open: no delete
""")


def test_the_synced_file_stays_the_one_sqlite_writes_while_others_come_and_go(
        tmp_path: Path, make_record: MakeRecord) -> None:
    path = tmp_path / "decisions.db"
    with SqliteDecisionLog(path) as log:
        log.append_sync(make_record())
        assert_syncs_the_file_sqlite_writes(log)
        first = log._wal.identity() if log._wal else None
        salts, _ = wal_header(path)
        appended = 1
        for round_ in range(6):
            state = SqliteAdminState(path)  # a writing connection of this process
            state._close()
            assert log.tail(1) and log.get("none") is None  # short reading connections
            subprocess.run([sys.executable, "-c", OTHER_PROCESS, str(path)], check=True,
                           timeout=60)
            for _ in range(80 if round_ < 5 else 0):
                log.append_sync(make_record())
                appended += 1
            assert_syncs_the_file_sqlite_writes(log)
        while wal_header(path)[0] == salts:  # until a copy-back starts the WAL over
            log.append_sync(make_record())
            appended += 1
            assert appended < 3000, "the WAL never started over"
        log.append_sync(make_record())
        appended += 1
        assert_syncs_the_file_sqlite_writes(log)
        assert log._wal is not None and log._wal.identity() == first  # same file, reused
        report = log.verify()
        assert report.ok and report.last_seq == appended


def test_two_logs_on_one_file_and_a_reconnect_as_the_last_connection(
        tmp_path: Path, make_record: MakeRecord) -> None:
    path = tmp_path / "decisions.db"
    one = SqliteDecisionLog(path)
    two = SqliteDecisionLog(path)
    try:
        for _ in range(5):
            one.append_sync(make_record())
            two.append_sync(make_record())
        assert_syncs_the_file_sqlite_writes(one)
        assert_syncs_the_file_sqlite_writes(two)
        two.close()  # not the last connection: the file stays
        one.append_sync(make_record())
        assert_syncs_the_file_sqlite_writes(one)
        assert one._wal is not None
        before = one._wal.identity()
        held = os.open(wal_of(path), os.O_RDONLY)  # keeps the old inode's number taken
        try:
            one._drop_writer()  # as after a failed write: now the last connection closes
            assert not wal_of(path).exists()  # SQLite copied it back and deleted it
            one.append_sync(make_record())  # reconnects: a new -wal, a new descriptor
            assert_syncs_the_file_sqlite_writes(one, ignore=held)
            assert one._wal is not None and one._wal.identity() != before
        finally:
            os.close(held)
        report = one.verify()
        assert report.ok and report.last_seq == 12
    finally:
        one.close()
        two.close()


def test_a_wal_deleted_behind_the_log_refuses_the_batch(
        tmp_path: Path, make_record: MakeRecord) -> None:
    """Pipelined: the log's own sync checks the file it synced is still linked. (In
    SQLite's regime nothing of the PDP's follows the commit, as before this log synced
    the ``-wal`` itself.)"""
    path = tmp_path / "decisions.db"
    with SqliteDecisionLog(path) as log:
        pipelined(log)
        log.append_sync(make_record())
        os.unlink(wal_of(path))
        with pytest.raises(AuditUnavailable, match="deleted or replaced"):
            log.append_sync(make_record())
        stored = log.append_sync(make_record())  # reconnected: syncs the file now written
        assert_syncs_the_file_sqlite_writes(log)
        assert log.get(stored["decision_id"]) is not None


# -- a failed fdatasync ------------------------------------------------------------------

def pipelined(log: SqliteDecisionLog) -> None:
    """As if another process had just appended: the next batches commit at NORMAL and
    are fdatasynced by the log (the only regime in which its own fdatasync can fail)."""
    assert log.regime is not None
    log.regime.pipelined = True


class FailingSync:
    """An fdatasync that fails with EIO, as a disk that could not write the pages."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, fd: int) -> None:
        self.calls += 1
        raise OSError(errno.EIO, os.strerror(errno.EIO))


def test_a_failed_fdatasync_answers_every_caller_of_its_batch_unavailable(
        tmp_path: Path, make_record: MakeRecord) -> None:
    path = tmp_path / "decisions.db"
    records = [make_record() for _ in range(40)]
    log = SqliteDecisionLog(path)
    try:
        kept = log.append_sync(make_record())
        pipelined(log)
        failing = FailingSync()
        log._fdatasync = failing

        async def many() -> list[object]:
            return await asyncio.gather(*(log.append(r) for r in records),
                                        return_exceptions=True)

        outcomes = asyncio.run(many())
        assert failing.calls >= 1
        assert all(isinstance(o, AuditUnavailable) for o in outcomes), outcomes
        assert not log.commit_health().ok
        log._fdatasync = os.fdatasync  # the disk "recovers": the log still refuses
        with pytest.raises(AuditUnavailable, match="until the PDP is restarted"):
            log.append_sync(make_record())
        assert log.append_many_sync([make_record()]) and isinstance(
            log.append_many_sync([make_record()])[0], AuditUnavailable)
        assert not log.commit_health().ok
        assert failing.calls == 1  # refused before writing: nothing more was synced
    finally:
        log.close()
    with SqliteDecisionLog(path) as again:  # a restart writes again
        again.append_sync(make_record())
        report = again.verify()
        # the first and the last, and whatever of the failed batch had committed: a
        # refused record may be in the log, an acknowledged one is never missing
        assert report.ok and again.get(kept["decision_id"]) is not None
        assert 3 <= report.last_seq <= 2 + len(records)  # the batch took 1 to 40 of them


def test_a_failed_fdatasync_on_the_spool_path_refuses_the_whole_group(
        tmp_path: Path, make_record: MakeRecord) -> None:
    path = tmp_path / "decisions.db"
    with SqliteDecisionLog(path) as log:
        pipelined(log)
        log._fdatasync = FailingSync()
        outcomes = log.append_many_sync([make_record() for _ in range(5)])
        assert len(outcomes) == 5 and all(isinstance(o, AuditUnavailable) for o in outcomes)
