"""The default decision log: one SQLite file in WAL mode, written by group commit.

Durability costs one fsync per transaction, not per record, so one writer
thread commits everything queued since its last commit in one transaction
(see :mod:`pdp.audit.chain.groupcommit`). With ``synchronous=FULL`` (the default,
``durability = "power"``) a commit is on disk before any caller hears "stored". While
this process is the only one appending, SQLite syncs in its commit (``FULL``); while
another process appends to the same file, the writer connection commits at ``NORMAL``
in its turn and the log fdatasyncs the ``-wal`` file right after the turn
(:mod:`pdp.audit.sqlite.wal_file`), so the other worker's commit does not wait for ours
to reach the disk (:mod:`pdp.audit.sqlite.sync_regime` chooses, batch by batch).
``NORMAL`` survives a crash of the process (the WAL is written) but not of the machine.
``EXTRA`` is SQLite's own, synced inside the turn.

The chain head (last ``seq`` and ``hash``) is read from the file at open, so
the chain continues across restarts. Several processes appending to one file
(``pdp serve --workers N``) take turns (:mod:`pdp.audit.sqlite.writer_turns`), and
each turn learns there whether another appended since its own last one (then it reads
the head again). If another writer appended anyway (one that takes no turns), the
next insert collides on ``seq`` and the batch is redone under the write lock from the
head on disk, so several processes sharing a file keep one chain.

Besides ``decisions`` the file holds ``checkpoints`` (signed heads, see
:mod:`pdp.audit.chain.checkpoint`) and the principal index, which the writer fills
every ``index_every`` records once the batch's callers were answered (see
:mod:`pdp.audit.sqlite.principal_index`); :mod:`pdp.audit.sqlite.schema` lists the
tables and indexes.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from pdp.audit.chain.groupcommit import Append, Outcome, Row, unavailable
from pdp.audit.chain.hashchain import GENESIS, ChainReport
from pdp.audit.errors import AuditUnavailable
from pdp.audit.query import DecisionFilter
from pdp.audit.records import PreparedRecord
from pdp.audit.sql.log import (
    SqlDecisionLog,
    connection_for_one_call,
    read_head,
    stored_records,
)
from pdp.audit.sqlite import principal_index
from pdp.audit.sqlite.dialect import SQLITE, immediate
from pdp.audit.sqlite.pages import page_sql
from pdp.audit.sqlite.schema import (
    ROWS_PER_INSERT,
    SYNCHRONOUS,
    connect,
    insert_atomically,
    insert_rows,
    migrate,
    rollback_quietly,
)
from pdp.audit.sqlite.sync_regime import QUIET_TURNS, SyncRegime
from pdp.audit.sqlite.wal_file import WalFile, WalGone
from pdp.audit.sqlite.writer_turns import WriterTurns

log = logging.getLogger(__name__)

_CUT = 64  # batch sizes above this are cut to multiples of it (see _batch_size)


class SqliteDecisionLog(SqlDecisionLog[sqlite3.Connection]):
    """A :class:`~pdp.audit.store.DecisionStore` in one SQLite file.

    Reads open their own connections and never wait for the writer (WAL). Also
    a :class:`~pdp.audit.chain.checkpoint.CheckpointStore`. Use as a context manager,
    or call :meth:`close`.
    """

    dialect = SQLITE
    RETENTION_ALSO_DELETES = (principal_index.DELETE_ENTRIES,)  # a record's entries go with it

    def __init__(self, path: Path, *, batch_max: int = 512, synchronous: str = "FULL",
                 busy_timeout_ms: int = 5000,
                 index_every: int = principal_index.INDEX_EVERY,
                 commit_timeout_s: float | None = None,
                 quiet_turns: int = QUIET_TURNS) -> None:
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
        # FULL: SQLite syncs in its commit while we append alone; while another process
        # appends, commit at NORMAL in the turn and fdatasync the -wal after it.
        self.regime = SyncRegime(quiet_turns) if synchronous == "FULL" else None
        self._conn_owes_sync = False  # the writer connection is at NORMAL for the regime
        self._batch_owes_sync = False  # the last batch committed so: _made_durable syncs
        self._wal: WalFile | None = None  # open while the writer connection is
        self._wal_failed: str | None = None  # an fdatasync failed: refuse until restart
        self._fdatasync: Callable[[int], None] = os.fdatasync  # tests put a failing one here
        self._seq, self._head = 0, GENESIS  # last committed record; read at open
        self._index_due = index_every  # catch the principal index up once _seq reaches this
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._turns = WriterTurns(self.path.with_name(self.path.name + "-writer"),
                                      self._busy)
        except OSError as exc:
            raise AuditUnavailable(f"cannot open decision log {self.path}: {exc}") from exc
        try:
            self._conn = self._open_writer()
        except (OSError, sqlite3.Error) as exc:
            self._turns.close()
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

    def _write_batch(self, conn: sqlite3.Connection,
                     batch: list[Append]) -> tuple[list[Outcome], list[Row]]:
        others_appended = self._turns.last_seq() != self._seq  # since our last turn
        if others_appended:
            self._seq, self._head = read_head(conn)
        if self.regime is not None:
            self._set_level(conn, owes_sync=self.regime.turn(others_appended))
        self._batch_owes_sync = self._conn_owes_sync  # the redo below commits at it too
        try:
            # Fast path: the cached head is current and no decision_id repeats an
            # old one. Few statements matter: each one hands the GIL over and back.
            outcomes, rows = self._chain(batch, self._seq, self._head, None)
            insert_atomically(conn, rows)
        except sqlite3.IntegrityError:
            # Another process appended (our seq is taken) or a decision_id is
            # already stored: redo under the write lock from what the file holds.
            rollback_quietly(conn)
            with immediate(conn):
                seq, head = read_head(conn)
                known = stored_records(SQLITE, conn,
                                       [i.prepared.columns.decision_id for i in batch])
                outcomes, rows = self._chain(batch, seq, head, known)
                insert_rows(conn, rows)
        if rows:
            self._seq, self._head = rows[-1][0], rows[-1][-1]
            self._turns.committed(self._seq)
        return outcomes, rows

    def _set_level(self, conn: sqlite3.Connection, *, owes_sync: bool) -> None:
        """Put the writer connection at ``NORMAL`` (``owes_sync``: the log syncs after the
        turn) or ``FULL`` (SQLite syncs in its commit), if it is not there already. Called
        outside a transaction, before the batch's insert."""
        if owes_sync != self._conn_owes_sync:
            conn.execute(f"PRAGMA synchronous={'NORMAL' if owes_sync else 'FULL'}")
            self._conn_owes_sync = owes_sync

    def _drop_writer(self) -> None:
        if self._conn is not None:
            rollback_quietly(self._conn)
        super()._drop_writer()
        if self._wal is not None:  # its file may be gone with the connection: open anew
            self._wal.close()
            self._wal = None

    def _made_durable(self, outcomes: list[Outcome]) -> list[Outcome]:
        """If the batch was committed at ``NORMAL`` for ``FULL`` (pipelined, see
        :mod:`pdp.audit.sqlite.sync_regime`): fdatasync the ``-wal`` now the turn is let
        go, before anyone hears "stored"; if that fails, every record of the batch is
        ``AuditUnavailable``. A batch committed at ``FULL`` was synced by SQLite in its
        commit and is answered as it is, with no system call here: even an ``fstat``
        (to see the ``-wal`` still linked) measured +30-40 µs per append at one
        connection (it lets go of the GIL; bench/RESULTS.md, round 10: pipe).

        The sync begins after this batch's commit wrote its frames, so it covers them, and
        any frames before them (another worker's, or a stored copy a retry is answered
        with): a WAL is replayed as a prefix of its commits. A batch whose write failed
        committed nothing (it refuses every record alike) and is answered as it is.
        """
        owes_sync, self._batch_owes_sync = self._batch_owes_sync, False
        if not owes_sync or not outcomes or isinstance(outcomes[0], AuditUnavailable):
            return outcomes
        try:
            with self._busy:  # a stalled disk shows on /readyz as a commit pending
                self._sync_wal()
        except OSError as exc:
            failed = unavailable(exc)
            self._last_error = str(failed)[:300]
            return [failed for _ in outcomes]
        return outcomes

    def _sync_wal(self) -> None:
        """fdatasync the ``-wal`` file; raise ``OSError`` if its frames are not known durable.

        A file deleted behind our back (:class:`WalGone`) drops the connection: the next
        batch reconnects and syncs whichever file SQLite then writes. A failed fdatasync
        leaves the file's state on disk unknown: Linux may have marked the unwritten pages
        clean and reports the error once per open file, so a second fdatasync can succeed
        with frames missing on disk, and every later commit, chained after them, would be
        lost with them in a power cut (the WAL is replayed only up to the first bad frame).
        So the log refuses every later append until the process is restarted.
        """
        wal = self._wal
        if wal is None:  # a commit without the writer's file open: nothing proves it synced
            self._drop_writer()
            raise WalGone("the -wal file is not open")
        try:
            wal.sync(self._fdatasync)
        except WalGone as exc:
            log.error("decision log: %s; reconnecting", exc)
            self._drop_writer()
            raise
        except OSError as exc:
            self._wal_failed = (f"fdatasync of {wal.path} failed ({exc}): the decision log "
                                "refuses appends until the PDP is restarted (check the disk)")
            log.critical("decision log: %s", self._wal_failed)
            self._drop_writer()
            raise

    def _must_connect(self) -> bool:
        return self._wal_failed is not None

    def _ready_to_write(self) -> None:
        if self._wal_failed is not None:  # refused before any record is taken
            raise AuditUnavailable(self._wal_failed)

    def _probe(self) -> None:
        self._ready_to_write()  # /readyz stays "unavailable" after a failed fdatasync

    def _after_commit(self) -> None:
        """Catch the principal index up every ``index_every`` records, in a turn.

        Committed at ``NORMAL`` (pipelined) this transaction is not fdatasynced on its
        own: the index is derived from the records (its entries and watermark commit
        together), and a WAL is replayed as a prefix of its commits, so a power cut loses
        it only together with every commit after it, none of them acknowledged; the next
        catch-up redoes it from the records. The next batch's sync (ours or SQLite's)
        makes it durable with that batch.
        """
        if self._seq < self._index_due or self._conn is None:
            return
        try:
            with self._turns:
                self._index_due = principal_index.catch_up(self._conn) + self.index_every
        except sqlite3.Error as exc:
            # Queries stay exact (they scan the longer tail); try again a stretch later.
            log.error("decision log: principal index not brought up to date: %s", exc)
            self._index_due = self._seq + self.index_every

    def _turn(self) -> WriterTurns:
        return self._turns

    def _writer_stopped(self) -> None:
        super()._writer_stopped()
        self._turns.close()

    def _open_writer(self) -> sqlite3.Connection:
        owes_sync = self.regime is not None and self.regime.pipelined
        conn = connect(self.path, busy_timeout_ms=self.busy_timeout_ms,
                       synchronous="NORMAL" if owes_sync else self.synchronous, writer=True)
        self._conn_owes_sync = owes_sync
        try:
            migrate(conn)
            self._seq, self._head = read_head(conn)  # the chain continues across restarts
            self._index_due = principal_index.watermark(conn) + self.index_every
            if self.regime is not None:  # migrate's transaction opened the connection's WAL
                if self._wal is not None:
                    self._wal.close()
                self._wal = None
                self._wal = WalFile(self.path)
        except BaseException:
            conn.close()
            raise
        return conn

    # -- reading (own connections; the queries are pdp.audit.sql.log's) ----------

    def _reading(self) -> AbstractContextManager[sqlite3.Connection]:
        """A ``query_only`` connection of its own: in WAL mode a reader sees the last
        commit and neither waits for the writer nor holds it up."""
        return connection_for_one_call(
            SQLITE, lambda: connect(self.path, busy_timeout_ms=self.busy_timeout_ms),
            str(self.path))

    def _maintaining(self) -> _ShortWriter:
        return _ShortWriter(self)

    def _page_sql(self, flt: DecisionFilter, limit: int,
                  before: int | None) -> tuple[str, list[Any]]:
        return page_sql(flt, limit, before=before)

    def verify(self, *, start_seq: int = 1, start_hash: str = GENESIS,
               end_seq: int | None = None) -> ChainReport:
        """As :meth:`SqlDecisionLog.verify`, and the principal index against the records:
        an entry removed (a decision hidden from the principal's history) or added
        is an ``index mismatch`` too."""
        report = super().verify(start_seq=start_seq, start_hash=start_hash, end_seq=end_seq)
        return self._check_principal_index(report, start_seq, start_hash, end_seq)

    def _check_principal_index(self, report: ChainReport, start_seq: int, start_hash: str,
                               end_seq: int | None) -> ChainReport:
        """``report``, or an earlier ``index mismatch`` where the principal index lies."""
        last = report.last_seq if report.ok else (report.first_broken_seq or start_seq) - 1
        if end_seq is not None:
            last = min(last, end_seq)
        with self._reading() as conn:
            seq = principal_index.first_mismatch(conn, start_seq, last)
            if seq is None:
                return report
            before = conn.execute("SELECT hash FROM decisions WHERE seq = ?",
                                  (seq - 1,)).fetchone()
            found = conn.execute("SELECT decision_id FROM decisions WHERE seq = ?",
                                 (seq,)).fetchone()
        return ChainReport(
            ok=False, checked=seq - start_seq, first_broken_seq=seq,
            first_broken_decision_id=found[0] if found else None, problem="index mismatch",
            detail=f"row {seq}: the principal index disagrees with the record",
            last_seq=seq - 1,
            head_hash=before[0] if before is not None and seq > start_seq else start_hash)


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


__all__ = ["SqliteDecisionLog"]
