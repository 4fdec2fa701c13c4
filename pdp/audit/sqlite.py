"""The default decision log: one SQLite file in WAL mode, written by group commit.

Durability costs one fsync per transaction, not per record, so one writer
thread commits everything queued since its last commit in one transaction
(see :mod:`pdp.audit.groupcommit`). With ``synchronous=FULL`` (the default) a
commit is on disk before any caller hears "stored"; ``NORMAL`` survives a
crash of the process (the WAL is written) but not of the machine.

The chain head (last ``seq`` and ``hash``) is read from the file at open, so
the chain continues across restarts. If another process appended meanwhile,
the next insert collides on ``seq``; the batch is then redone under the write
lock from the head on disk, so several processes sharing a file keep one chain.

Besides ``decisions`` the file holds ``checkpoints`` (signed heads, see
:mod:`pdp.audit.checkpoint`) and the principal index, which the writer fills
every ``index_every`` records once the batch's callers were answered (see
:mod:`pdp.audit.sqlite_index`); :mod:`pdp.audit.sqlite_schema` lists the
tables and indexes.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pdp.audit import sqlite_index, sqlite_read
from pdp.audit.checkpoint import Checkpoint
from pdp.audit.errors import AuditUnavailable
from pdp.audit.groupcommit import Append, GroupCommitLog, Outcome, Row, unavailable
from pdp.audit.hashchain import GENESIS, ChainReport
from pdp.audit.query import DecisionFilter, Page
from pdp.audit.records import PreparedRecord, StoredRow, loaded
from pdp.audit.sqlite_schema import (
    ROWS_PER_INSERT,
    STORED,
    SYNCHRONOUS,
    connect,
    insert_atomically,
    insert_rows,
    migrate,
    read_head,
    rollback_quietly,
)

log = logging.getLogger(__name__)

DELETE_CHUNK = 10_000
"""Rows deleted per transaction by retention, so appends never wait long for the lock."""

_CUT = 64  # batch sizes above this are cut to multiples of it (see _batch_size)


class SqliteDecisionLog(GroupCommitLog):
    """A :class:`~pdp.audit.store.DecisionStore` in one SQLite file.

    Reads open their own connections and never wait for the writer (WAL). Also
    a :class:`~pdp.audit.checkpoint.CheckpointStore`. Use as a context manager,
    or call :meth:`close`.
    """

    def __init__(self, path: Path, *, batch_max: int = 512, synchronous: str = "FULL",
                 busy_timeout_ms: int = 5000,
                 index_every: int = sqlite_index.INDEX_EVERY,
                 commit_timeout_s: float | None = None) -> None:
        super().__init__(batch_max=batch_max, commit_timeout_s=commit_timeout_s)
        synchronous = synchronous.upper()
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS)}")
        if index_every < 1:
            raise ValueError("index_every must be at least 1")
        self.path = Path(path)
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self.index_every = index_every
        self._seq, self._head = 0, GENESIS  # last committed record; read at open
        self._index_due = index_every  # catch the principal index up once _seq reaches this
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn: sqlite3.Connection | None = self._open_writer()
        except (OSError, sqlite3.Error) as exc:
            raise AuditUnavailable(f"cannot open decision log {self.path}: {exc}") from exc
        self._start_writer()

    def __enter__(self) -> SqliteDecisionLog:
        return self

    # -- the writer thread --------------------------------------------------

    def _row(self, p: PreparedRecord, seq: int, head: str, digest: str, text: str) -> Row:
        c = p.columns
        return (seq, c.decision_id, c.kind, c.ts, c.principal, c.action, c.resource, c.decision,
                c.pep, p.policies_json, p.reason_codes_json, text, head, digest)

    def _batch_size(self, available: int) -> int:
        # Up to 64 records: all of them; more: a multiple of 64. So at most ~70 distinct
        # multi-row INSERTs exist, each parsed once and then found in the connection's
        # statement cache (128 entries); a 137-row INSERT parsed afresh costs about as
        # much as executing it. The few left over lead the next transaction.
        if available <= _CUT:
            return available
        return min(available - available % _CUT, ROWS_PER_INSERT - ROWS_PER_INSERT % _CUT)

    def _write(self, batch: list[Append]) -> list[Outcome]:
        try:
            if self._conn is None:  # dropped after an earlier failure: start afresh
                self._conn = self._open_writer()
            conn = self._conn
            try:
                # Fast path: the cached head is current and no decision_id repeats an
                # old one. Few statements matter: each one hands the GIL over and back.
                outcomes, rows = self._chain(batch, self._seq, self._head, None)
                insert_atomically(conn, rows)
            except sqlite3.IntegrityError:
                # Another process appended (our seq is taken) or a decision_id is
                # already stored: redo under the write lock from what the file holds.
                rollback_quietly(conn)
                conn.execute("BEGIN IMMEDIATE")
                seq, head = read_head(conn)
                known = _stored_records(conn, [i.prepared.columns.decision_id for i in batch])
                outcomes, rows = self._chain(batch, seq, head, known)
                insert_rows(conn, rows)
                conn.execute("COMMIT")
        except Exception as exc:
            # Nothing of the batch is stored; a fresh connection re-reads the head.
            log.error("decision log commit failed: %s", exc)
            if self._conn is not None:
                rollback_quietly(self._conn)
                self._conn.close()
                self._conn = None
            return [unavailable(exc) for _ in batch]
        if rows:
            self._seq, self._head = rows[-1][0], rows[-1][-1]
        self._committed(rows)
        return outcomes

    def _after_commit(self) -> None:
        if self._seq < self._index_due or self._conn is None:
            return
        try:
            self._index_due = sqlite_index.catch_up(self._conn) + self.index_every
        except sqlite3.Error as exc:
            # Queries stay exact (they scan the longer tail); try again a stretch later.
            log.error("decision log: principal index not brought up to date: %s", exc)
            self._index_due = self._seq + self.index_every

    def _writer_stopped(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _open_writer(self) -> sqlite3.Connection:
        conn = connect(self.path, busy_timeout_ms=self.busy_timeout_ms,
                       synchronous=self.synchronous, writer=True)
        try:
            migrate(conn)
            self._seq, self._head = read_head(conn)  # the chain continues across restarts
            self._index_due = sqlite_index.watermark(conn) + self.index_every
        except BaseException:
            conn.close()
            raise
        return conn

    # -- reading (own connections; see sqlite_read) ---------------------------

    def _reader(self) -> sqlite_read.Reader:
        return sqlite_read.Reader(self.path, self.busy_timeout_ms)

    def get(self, decision_id: str) -> dict[str, Any] | None:
        return self._reader().get(decision_id)

    def tail(self, n: int) -> list[dict[str, Any]]:
        return self._reader().tail(n)

    def query(self, filters: DecisionFilter, limit: int = 100,
              cursor: str | None = None) -> Page:
        return self._reader().query(filters, limit, cursor)

    def iter_all(self) -> Iterator[dict[str, Any]]:
        return self._reader().iter_all()

    def iter_stored(self) -> Iterator[StoredRow]:
        return self._reader().iter_stored()

    def verify(self, *, start_seq: int = 1, start_hash: str = GENESIS,
               end_seq: int | None = None) -> ChainReport:
        return self._reader().verify(start_seq=start_seq, start_hash=start_hash, end_seq=end_seq)

    # -- checkpoints and retention (CheckpointStore) ----------------------------

    def head(self) -> tuple[int, str]:
        return self._reader().head()

    def first_seq(self) -> int | None:
        return self._reader().first_seq()

    def checkpoints(self) -> list[Checkpoint]:
        return self._reader().checkpoints()

    def hashes_at(self, seqs: Iterable[int]) -> dict[int, tuple[str, str]]:
        return self._reader().hashes_at(seqs)

    def first_seq_at_or_after(self, ts: str) -> int | None:
        """The lowest seq whose timestamp is ``ts`` or later (retention's cut)."""
        return self._reader().first_seq_at_or_after(ts)

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        with self._short_writer() as conn:
            conn.execute(
                "INSERT INTO checkpoints (seq, head_hash, ts, kind, key_id, signature) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (checkpoint.seq, checkpoint.head_hash, checkpoint.timestamp, checkpoint.kind,
                 checkpoint.key_id, checkpoint.signature))

    def delete_through(self, seq: int) -> int:
        """Delete every record with ``seq`` at most ``seq`` (retention); returns how many.

        Deletes in chunks of :data:`DELETE_CHUNK`, one short transaction each,
        with their principal index entries.
        """
        deleted = 0
        chunk = "SELECT seq FROM decisions WHERE seq <= ? ORDER BY seq LIMIT ?"
        with self._short_writer() as conn:
            while True:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute(sqlite_index.DELETE_ENTRIES.format(chunk=chunk),
                                 (seq, DELETE_CHUNK))
                    cur = conn.execute(f"DELETE FROM decisions WHERE seq IN ({chunk})",
                                       (seq, DELETE_CHUNK))
                    conn.execute("COMMIT")
                except BaseException:
                    rollback_quietly(conn)
                    raise
                deleted += cur.rowcount
                if cur.rowcount < DELETE_CHUNK:
                    return deleted

    def _short_writer(self) -> _ShortWriter:
        return _ShortWriter(self)


class _ShortWriter:
    """A write connection for one maintenance call (checkpoints, retention).

    Opened and closed per call: these are rare, and they must work after the
    writer thread stopped (the shutdown checkpoint).
    """

    def __init__(self, log: SqliteDecisionLog) -> None:
        self.log = log
        self.conn: sqlite3.Connection | None = None

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.conn = connect(self.log.path, busy_timeout_ms=self.log.busy_timeout_ms,
                                synchronous=self.log.synchronous, writer=True)
            migrate(self.conn)
        except (sqlite3.Error, OSError) as exc:
            if self.conn is not None:
                self.conn.close()
            raise AuditUnavailable(f"cannot write to decision log {self.log.path}: {exc}") from exc
        return self.conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self.conn is not None
        self.conn.close()
        if isinstance(exc, sqlite3.Error):
            raise AuditUnavailable(f"cannot write to decision log {self.log.path}: {exc}") from exc


def _stored_records(conn: sqlite3.Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):  # stay far below SQLite's bound-parameter limit
        chunk = ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT decision_id, {STORED} FROM decisions WHERE decision_id IN ({marks})"
        for decision_id, *stored in conn.execute(sql, chunk):
            found[decision_id] = loaded(*stored)
    return found


__all__ = ["DELETE_CHUNK", "SqliteDecisionLog"]
