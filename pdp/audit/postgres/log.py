"""The decision log in PostgreSQL: for several PDP replicas writing one chain.

The same group commit as the SQLite store (:mod:`pdp.audit.chain.groupcommit`): a
writer thread per process takes what is queued, and writes it as one
transaction with one ``COPY``. What changes is the head: several processes
(replicas, or ``uvicorn --workers``) append to one table, so every batch

1. takes the transaction-level advisory lock of this schema's log
   (``pg_advisory_xact_lock``; released by COMMIT or ROLLBACK, so a crashed
   replica never leaves it held),
2. then, in a *new statement* (READ COMMITTED takes a fresh snapshot per
   statement, so it sees the commit of whoever held the lock before), reads
   the head ``(seq, hash)`` of the newest record,
3. chains the batch after it, ``COPY``s the rows in and commits.

The lock serializes chain extension only: reads never take it, and other
schemas (other logs, parallel test runs) have their own key. A repeated
``decision_id`` violates its UNIQUE constraint; the batch is then redone with
the stored copies looked up (idempotent appends, as in SQLite).

The tables and their migrations are in :mod:`pdp.audit.postgres.schema`;
reads, verification, checkpoints and retention are the shared SQL of
:mod:`pdp.audit.sql.log`.

**Bounded waits** (see :mod:`pdp.audit.chain.groupcommit`). The writer's session has
``statement_timeout`` (a slow or locked server) and
``idle_in_transaction_session_timeout`` (a replica that vanished mid-transaction
cannot keep the chain's lock) set to ``commit_timeout_s``; every connection has
a connect timeout and TCP keepalives with ``tcp_user_timeout`` (a peer that is
gone). A server that keeps the connection open and answers nothing defeats all
of those, so the watchdog shuts the writer's socket down past the bound
(:meth:`PostgresDecisionLog._abort_write`) and the next batch reconnects.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from pdp.audit.chain.groupcommit import Append, Outcome, Row
from pdp.audit.chain.hashchain import GENESIS
from pdp.audit.errors import AuditUnavailable
from pdp.audit.postgres.dialect import POSTGRES
from pdp.audit.postgres.schema import lock_key, migrate, network_bounds
from pdp.audit.postgres.watchdog import shut_down, watchdog
from pdp.audit.records import COLUMNS, PreparedRecord
from pdp.audit.sql.log import (
    HEAD,
    SqlDecisionLog,
    connection_for_one_call,
    stored_records,
)

_COPY = f"COPY decisions ({', '.join(COLUMNS)}) FROM STDIN"
_INSERT = (f"INSERT INTO decisions ({', '.join(COLUMNS)}) "
           f"VALUES ({', '.join(['%s'] * len(COLUMNS))})")
_PIPELINED_ROWS = 8
"""Batches up to this many rows are inserted row by row, pipelined with their COMMIT (one
round trip); larger ones by COPY, whose cost per row is about half (bench/audit_writer.py:
the two cost the same near 7 rows)."""


def lock_and_read_head(conn: psycopg.Connection[Any], key: int) -> tuple[int, str]:
    """Open a transaction, take the chain's advisory lock ``key``, read the head after it.

    One round trip instead of three: at one record a batch the writer spent most
    of its time in round trips (``bench/audit_writer.py``). Sent as one simple
    query (no parameters; ``key`` is an integer we computed), whose statements run
    in order, each with a snapshot of its own taken when it starts (READ
    COMMITTED): so the head is read once the lock is held and sees the commit of
    whoever held it before. And a simple query is never prepared, so the head read
    is planned afresh every time: psycopg prepares a statement on its fifth run and
    PostgreSQL then keeps its plan on that connection; prepared while the table's
    statistics said "a few rows" (ANALYZE, autovacuum or a CREATE INDEX on a young
    log), the plan is a sequential scan, kept as the table grows, and every batch
    would read the whole table while holding the chain's lock. Planned afresh, it
    is the primary key's backward index scan (one page). The caller commits or
    rolls back.
    """
    cur = conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({int(key)}); {HEAD}",
                       prepare=False)
    cur.nextset()  # past BEGIN's and the lock's results
    cur.nextset()
    row = cur.fetchone()
    return (int(row[0]), str(row[1])) if row is not None else (0, GENESIS)


def rollback_quietly(conn: psycopg.Connection[Any]) -> None:
    """End a failed transaction without masking the error that failed it (a broken
    connection is dropped by the caller anyway)."""
    try:
        conn.rollback()
    except psycopg.Error:
        pass


# The longest one read on the shared read connection may take before its socket is shut
# down (it then fails as AuditUnavailable and the next read reconnects). Long scans
# (verify, export) have connections of their own and no such bound.
READ_TIMEOUT_S = 30.0


class PostgresDecisionLog(SqlDecisionLog[psycopg.Connection[Any]]):
    """A :class:`~pdp.audit.store.DecisionStore` (and ``CheckpointStore``) in PostgreSQL.

    ``dsn`` is a libpq connection string or URI, e.g.
    ``postgresql://pdp@db.internal/pdp?options=-csearch_path%3Dpdp``. Opening
    connects, creates or migrates the tables and reads the head; it raises
    ``AuditUnavailable`` when the database cannot be reached.
    """

    thread_name = "pdp-audit-writer-pg"
    dialect = POSTGRES

    def __init__(self, dsn: str, *, batch_max: int = 512, connect_timeout_s: int | None = None,
                 commit_timeout_s: float | None = None,
                 read_timeout_s: float = READ_TIMEOUT_S) -> None:
        super().__init__(batch_max=batch_max, commit_timeout_s=commit_timeout_s)
        self.dsn = dsn
        self.read_timeout_s = read_timeout_s
        if connect_timeout_s is None:  # libpq counts whole seconds, at least 2
            connect_timeout_s = 5 if commit_timeout_s is None else max(
                2, math.ceil(commit_timeout_s))
        self.connect_timeout_s = connect_timeout_s
        self._lock_key = 0
        self._reader_lock = threading.Lock()
        self._reader_conn: psycopg.Connection[Any] | None = None
        self._conn = None
        self._opening: psycopg.Connection[Any] | None = None  # being set up (watchdog)
        # Opening migrates: bounded like a write (the watchdog is not running yet).
        guard = None if commit_timeout_s is None else threading.Timer(
            commit_timeout_s + connect_timeout_s, self._abort_write)
        if guard is not None:
            guard.daemon = True
            guard.start()
        try:
            self._conn = self._open_writer()
        except (psycopg.Error, OSError) as exc:
            raise AuditUnavailable(f"cannot open decision log in PostgreSQL: {exc}") from exc
        finally:
            if guard is not None:
                guard.cancel()
        self._start_writer()

    def __enter__(self) -> PostgresDecisionLog:
        return self

    # -- connections and schema -------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, autocommit=True,
                               **network_bounds(self.dsn, self.connect_timeout_s))

    def _open_writer(self) -> psycopg.Connection[Any]:
        conn = self._connect()
        self._opening = conn
        try:
            if self.commit_timeout_s is not None:
                bound = f"{max(1, int(self.commit_timeout_s * 1000))}ms"
                conn.execute("SELECT set_config('statement_timeout', %s, false), "
                             "set_config('idle_in_transaction_session_timeout', %s, false)",
                             (bound, bound))
            self._lock_key = lock_key(conn)
            migrate(conn, self._lock_key)
        except BaseException:
            conn.close()
            raise
        finally:
            self._opening = None
        return conn

    def _abort_write(self) -> None:
        """Shut the writer's socket down: its blocked libpq call fails at once (watchdog)."""
        for conn in (self._opening, self._conn):
            shut_down(conn)

    def _must_connect(self) -> bool:
        return self._conn is None  # dropped after an earlier failure

    def _ready_to_write(self) -> None:
        if self._conn is None:  # dropped after an earlier failure: start afresh
            self._conn = self._open_writer()

    def _probe(self) -> None:
        """One round trip on the writer's connection, reconnecting if it was dropped."""
        try:
            self._ready_to_write()
            assert self._conn is not None
            self._conn.execute("SELECT 1")
        except Exception:
            self._drop_writer()
            raise

    def _writer_stopped(self) -> None:
        super()._writer_stopped()
        with self._reader_lock:
            if self._reader_conn is not None:
                self._reader_conn.close()
                self._reader_conn = None

    # -- the writer thread --------------------------------------------------

    def _row(self, p: PreparedRecord, seq: int, head: str, digest: str, text: str) -> Row:
        c = p.columns
        t, texts = POSTGRES.text, POSTGRES.text_list
        return (seq, t(c.decision_id), t(c.kind), c.ts, t(c.principal), t(c.action),
                t(c.resource), t(c.decision), t(c.pep), texts(c.policies), texts(c.reason_codes),
                text, head, digest)

    def _write_batch(self, conn: psycopg.Connection[Any],
                     batch: list[Append]) -> tuple[list[Outcome], list[Row]]:
        try:
            return self._write_after_head(conn, batch, lookup=False)
        except pg_errors.UniqueViolation:
            # A decision_id is already stored: redo, settling repeats from the table.
            return self._write_after_head(conn, batch, lookup=True)

    def _write_after_head(self, conn: psycopg.Connection[Any], batch: list[Append], *,
                          lookup: bool) -> tuple[list[Outcome], list[Row]]:
        try:
            seq, head = lock_and_read_head(conn, self._lock_key)
            known = None
            if lookup:
                known = stored_records(POSTGRES, conn,
                                       [i.prepared.columns.decision_id for i in batch])
            outcomes, rows = self._chain(batch, seq, head, known)
            if len(rows) > _PIPELINED_ROWS:
                with conn.cursor() as cur, cur.copy(_COPY) as copy:
                    for r in rows:
                        copy.write_row(r)
                conn.execute("COMMIT", prepare=False)
            else:  # the INSERTs and the COMMIT in one round trip (COPY takes two)
                with conn.pipeline(), conn.cursor() as cur:
                    if rows:
                        cur.executemany(_INSERT, rows)
                    cur.execute("COMMIT", prepare=False)
        except BaseException:
            rollback_quietly(conn)
            raise
        return outcomes, rows

    # -- reading ----------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[psycopg.Connection[Any]]:
        """The shared read connection (autocommit: each statement sees the latest commit)."""
        with self._reader_lock:
            try:
                if self._reader_conn is None or self._reader_conn.closed:
                    self._reader_conn = self._connect()
                # A read sent into a connection that swallows it (a peer that keeps the
                # socket open and never answers) would wait forever, holding this lock:
                # every later read, and the checkpoints, would wait behind it.
                with watchdog(self._reader_conn, self.read_timeout_s):
                    yield self._reader_conn
            except psycopg.Error as exc:
                if self._reader_conn is not None:
                    self._reader_conn.close()
                    self._reader_conn = None
                raise AuditUnavailable(f"cannot read decision log in PostgreSQL: {exc}") from exc

    def _own_connection(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        """A connection of its own, for long scans and maintenance writes."""
        return connection_for_one_call(POSTGRES, self._connect, "in PostgreSQL")

    def _scanning(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        return self._own_connection()  # a long scan must not hold the shared reader

    def _maintaining(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        return self._own_connection()


__all__ = ["PostgresDecisionLog"]
