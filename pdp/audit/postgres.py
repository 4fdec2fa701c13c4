"""The decision log in PostgreSQL: for several PDP replicas writing one chain.

The same group commit as the SQLite store (:mod:`pdp.audit.groupcommit`): a
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

The schema lives in whatever schema ``search_path`` names first (set it in the
DSN: ``options=-csearch_path=pdp``); the PDP creates and migrates its tables
(``schema_version``, ``decisions``, ``checkpoints``, ``admin_state``) under the same lock.
Text columns are ``COLLATE "C"`` so that comparisons are by code point, as in
SQLite: timestamps compare as text and principal prefixes are ranges.

**Bounded waits** (see :mod:`pdp.audit.groupcommit`). The writer's session has
``statement_timeout`` (a slow or locked server) and
``idle_in_transaction_session_timeout`` (a replica that vanished mid-transaction
cannot keep the chain's lock) set to ``commit_timeout_s``; every connection has
a connect timeout and TCP keepalives with ``tcp_user_timeout`` (a peer that is
gone). A server that keeps the connection open and answers nothing defeats all
of those, so the watchdog shuts the writer's socket down past the bound
(:meth:`PostgresDecisionLog._abort_write`) and the next batch reconnects.

Indexes, as in SQLite: ``(principal, ts)``, ``(ts)``, ``(action, ts)``,
``(decision, ts)``, UNIQUE ``decision_id``, and the primary key ``seq``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from pdp.audit.checkpoint import Checkpoint
from pdp.audit.errors import AuditUnavailable
from pdp.audit.groupcommit import Append, GroupCommitLog, Outcome, Row, unavailable
from pdp.audit.hashchain import GENESIS, ChainReport, verify_stored
from pdp.audit.query import DecisionFilter, Page, check_limit, decode_cursor, encode_cursor
from pdp.audit.records import COLUMNS, STORED, PreparedRecord, StoredRow, columns_of, loaded
from pdp.audit.sqlite_read import prefix_upper_bound

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
DELETE_CHUNK = 10_000
_CHUNK = 1000  # rows per statement when streaming the whole log

_T = 'text COLLATE "C"'
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        f"""CREATE TABLE decisions (
            seq          bigint PRIMARY KEY,
            decision_id  {_T} NOT NULL UNIQUE,
            kind         {_T},
            ts           {_T},   -- RFC 3339 UTC, fixed width: sorts as text
            principal    {_T},
            action       {_T},
            resource     {_T},
            decision     {_T},
            pep          {_T},
            policies     text[] NOT NULL,  -- determining policy ids
            reason_codes text[] NOT NULL,
            record       text NOT NULL,    -- canonical JSON incl. seq/prev_hash/hash
            prev_hash    text NOT NULL,
            hash         text NOT NULL
        )""",
        "CREATE INDEX decisions_principal_ts ON decisions (principal, ts)",
        "CREATE INDEX decisions_ts ON decisions (ts)",
        "CREATE INDEX decisions_action_ts ON decisions (action, ts)",
        "CREATE INDEX decisions_decision_ts ON decisions (decision, ts)",
        f"""CREATE TABLE checkpoints (
            id         bigserial PRIMARY KEY,
            seq        bigint NOT NULL,
            head_hash  text NOT NULL,
            ts         {_T} NOT NULL,
            kind       text NOT NULL,
            key_id     text,
            signature  text
        )""",
        "CREATE INDEX checkpoints_seq ON checkpoints (seq)",
    ),
    # Chain format 2: ``record`` is the exact text its hash covers, with ``seq`` first
    # and without prev_hash/hash (see pdp.audit.sqlite_schema's version 4). Keeps older
    # releases out.
    2: (),
    # What administrators set, kept durably beside the log (pdp.audit.admin_state).
    3: (
        f"""CREATE TABLE admin_state (
            topic {_T} NOT NULL, key {_T} NOT NULL, body text NOT NULL,
            PRIMARY KEY (topic, key))""",
        """CREATE TABLE admin_state_meta (
            id int PRIMARY KEY CHECK (id = 1), epoch text NOT NULL, version bigint NOT NULL)""",
        "INSERT INTO admin_state_meta (id, epoch, version) "
        "VALUES (1, substr(md5(random()::text), 1, 8), 0)",
    ),
}

_COPY = f"COPY decisions ({', '.join(COLUMNS)}) FROM STDIN"
_HEAD = "SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1"
_EQUAL = ("principal", "action", "resource", "decision", "pep", "kind")


def _pg(value: str | None) -> str | None:
    """A query column as PostgreSQL can hold it: text cannot contain NUL (U+0000).

    The record itself is JSON, where NUL is escaped; only the copies in the
    query columns (and filters compared with them) need this.
    """
    if value is not None and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


class PostgresDecisionLog(GroupCommitLog):
    """A :class:`~pdp.audit.store.DecisionStore` (and ``CheckpointStore``) in PostgreSQL.

    ``dsn`` is a libpq connection string or URI, e.g.
    ``postgresql://pdp@db.internal/pdp?options=-csearch_path%3Dpdp``. Opening
    connects, creates or migrates the tables and reads the head; it raises
    ``AuditUnavailable`` when the database cannot be reached.
    """

    thread_name = "pdp-audit-writer-pg"

    def __init__(self, dsn: str, *, batch_max: int = 512, connect_timeout_s: int | None = None,
                 commit_timeout_s: float | None = None) -> None:
        super().__init__(batch_max=batch_max, commit_timeout_s=commit_timeout_s)
        self.dsn = dsn
        if connect_timeout_s is None:  # libpq counts whole seconds, at least 2
            connect_timeout_s = 5 if commit_timeout_s is None else max(
                2, math.ceil(commit_timeout_s))
        self.connect_timeout_s = connect_timeout_s
        self._lock_key = 0
        self._reader_lock = threading.Lock()
        self._reader_conn: psycopg.Connection[Any] | None = None
        self._conn: psycopg.Connection[Any] | None = None
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
            if conn is None or conn.closed:
                continue
            try:
                fd = conn.pgconn.socket
            except psycopg.Error:
                continue
            with socket.socket(fileno=os.dup(fd)) as sock:  # a duplicate: closing it is ours
                sock.shutdown(socket.SHUT_RDWR)

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
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            raise

    def _writer_stopped(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        with self._reader_lock:
            if self._reader_conn is not None:
                self._reader_conn.close()
                self._reader_conn = None

    # -- the writer thread --------------------------------------------------

    def _row(self, p: PreparedRecord, seq: int, head: str, digest: str, text: str) -> Row:
        c = p.columns
        return (seq, _pg(c.decision_id), _pg(c.kind), c.ts, _pg(c.principal), _pg(c.action),
                _pg(c.resource), _pg(c.decision), _pg(c.pep), [_pg(x) for x in c.policies],
                [_pg(x) for x in c.reason_codes], text, head, digest)

    def _write(self, batch: list[Append]) -> list[Outcome]:
        try:
            if self._conn is None:  # dropped after an earlier failure: start afresh
                self._conn = self._open_writer()
            conn = self._conn
            try:
                outcomes, rows = self._write_after_head(conn, batch, lookup=False)
            except pg_errors.UniqueViolation:
                # A decision_id is already stored: redo, settling repeats from the table.
                outcomes, rows = self._write_after_head(conn, batch, lookup=True)
        except Exception as exc:
            log.error("decision log commit failed: %s", exc)
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            return [unavailable(exc) for _ in batch]
        self._committed(rows)
        return outcomes

    def _write_after_head(self, conn: psycopg.Connection[Any], batch: list[Append], *,
                          lookup: bool) -> tuple[list[Outcome], list[Row]]:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            row = conn.execute(_HEAD).fetchone()  # a new statement: sees the last holder's commit
            seq, head = (row[0], row[1]) if row is not None else (0, GENESIS)
            known = None
            if lookup:
                ids = [_pg(i.prepared.columns.decision_id) for i in batch]
                known = {decision_id: loaded(*stored) for decision_id, *stored in conn.execute(
                    f"SELECT decision_id, {STORED} FROM decisions WHERE decision_id = ANY(%s)",
                    (ids,))}
            outcomes, rows = self._chain(batch, seq, head, known)
            if rows:
                with conn.cursor() as cur, cur.copy(_COPY) as copy:
                    for r in rows:
                        copy.write_row(r)
        return outcomes, rows

    # -- reading ----------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[psycopg.Connection[Any]]:
        """The shared read connection (autocommit: each statement sees the latest commit)."""
        with self._reader_lock:
            try:
                if self._reader_conn is None or self._reader_conn.closed:
                    self._reader_conn = self._connect()
                yield self._reader_conn
            except psycopg.Error as exc:
                if self._reader_conn is not None:
                    self._reader_conn.close()
                    self._reader_conn = None
                raise AuditUnavailable(f"cannot read decision log in PostgreSQL: {exc}") from exc

    @contextmanager
    def _own_connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of its own, for long scans and maintenance writes."""
        try:
            conn = self._connect()
        except psycopg.Error as exc:
            raise AuditUnavailable(f"cannot reach decision log in PostgreSQL: {exc}") from exc
        try:
            yield conn
        except psycopg.Error as exc:
            raise AuditUnavailable(f"decision log in PostgreSQL failed: {exc}") from exc
        finally:
            conn.close()

    def get(self, decision_id: str) -> dict[str, Any] | None:
        with self._reading() as conn:
            row = conn.execute(f"SELECT {STORED} FROM decisions WHERE decision_id = %s",
                               (_pg(decision_id),)).fetchone()
        return None if row is None else loaded(*row)

    def tail(self, n: int) -> list[dict[str, Any]]:
        if n <= 0:
            return []
        with self._reading() as conn:
            rows = conn.execute(f"SELECT {STORED} FROM decisions ORDER BY seq DESC LIMIT %s",
                                (n,)).fetchall()
        return [loaded(*row) for row in reversed(rows)]

    def query(self, filters: DecisionFilter, limit: int = 100,
              cursor: str | None = None) -> Page:
        check_limit(limit)
        where, params = where_clause(filters, before=decode_cursor(cursor))
        sql = f"SELECT {STORED} FROM decisions{where} ORDER BY seq DESC LIMIT %s"
        with self._reading() as conn:
            rows = conn.execute(sql, [*params, limit + 1]).fetchall()  # +1: is there more?
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(records=[loaded(*row) for row in rows],
                    next_cursor=encode_cursor(rows[-1][1]) if more else None)

    def iter_all(self) -> Iterator[dict[str, Any]]:
        for row in self.iter_stored():
            yield row.record()

    def iter_stored(self) -> Iterator[StoredRow]:
        for row in self._rows(f"seq, {STORED}"):
            yield StoredRow(*row[1:])

    def verify(self, *, start_seq: int = 1, start_hash: str = GENESIS,
               end_seq: int | None = None) -> ChainReport:
        """The chain over the ``record`` JSON, and each query column against its record.

        From ``start_seq`` after ``start_hash`` (a retention anchor), up to ``end_seq``.
        """
        rows = self._rows(", ".join(COLUMNS), after=start_seq - 1, through=end_seq)
        return verify_stored((dict(zip(COLUMNS, row)) for row in rows), _columns_disagree,
                             start_seq=start_seq, start_hash=start_hash)

    def _rows(self, columns: str, after: int = 0,
              through: int | None = None) -> Iterator[tuple[Any, ...]]:
        last = after
        end = through if through is not None else 2**63 - 1
        with self._own_connection() as conn:
            while True:
                rows = conn.execute(
                    f"SELECT {columns} FROM decisions WHERE seq > %s AND seq <= %s "
                    "ORDER BY seq LIMIT %s", (last, end, _CHUNK)).fetchall()
                yield from rows
                if len(rows) < _CHUNK:
                    return
                last = rows[-1][0]

    # -- checkpoints and retention (CheckpointStore) ----------------------------

    def head(self) -> tuple[int, str]:
        with self._reading() as conn:
            row = conn.execute(_HEAD).fetchone()
        return (row[0], row[1]) if row is not None else (0, GENESIS)

    def first_seq(self) -> int | None:
        with self._reading() as conn:
            row = conn.execute("SELECT min(seq) FROM decisions").fetchone()
        first: int | None = row[0] if row is not None else None  # min() always has one row
        return first

    def first_seq_at_or_after(self, ts: str) -> int | None:
        with self._reading() as conn:
            row = conn.execute("SELECT min(seq) FROM decisions WHERE ts >= %s",
                               (ts,)).fetchone()
        first: int | None = row[0] if row is not None else None
        return first

    def checkpoints(self) -> list[Checkpoint]:
        with self._reading() as conn:
            rows = conn.execute("SELECT seq, head_hash, ts, kind, key_id, signature "
                                "FROM checkpoints ORDER BY seq, id").fetchall()
        return [Checkpoint(*row) for row in rows]

    def hashes_at(self, seqs: Iterable[int]) -> dict[int, tuple[str, str]]:
        wanted = sorted(set(seqs))
        if not wanted:
            return {}
        with self._reading() as conn:
            rows = conn.execute("SELECT seq, hash, decision_id FROM decisions "
                                "WHERE seq = ANY(%s)", (wanted,)).fetchall()
        return {seq: (digest, rid) for seq, digest, rid in rows}

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        with self._own_connection() as conn:
            conn.execute(
                "INSERT INTO checkpoints (seq, head_hash, ts, kind, key_id, signature) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (checkpoint.seq, checkpoint.head_hash, checkpoint.timestamp, checkpoint.kind,
                 checkpoint.key_id, checkpoint.signature))

    def delete_through(self, seq: int) -> int:
        """Delete every record with ``seq`` at most ``seq`` (retention), in short transactions."""
        deleted = 0
        with self._own_connection() as conn:
            while True:
                cur = conn.execute(
                    "DELETE FROM decisions WHERE seq IN (SELECT seq FROM decisions "
                    "WHERE seq <= %s ORDER BY seq LIMIT %s)", (seq, DELETE_CHUNK))
                deleted += cur.rowcount
                if cur.rowcount < DELETE_CHUNK:
                    return deleted


def network_bounds(dsn: str, connect_timeout_s: int) -> dict[str, Any]:
    """libpq settings that bound waiting on the network, unless ``dsn`` sets them itself.

    A connect timeout, and TCP keepalives with ``tcp_user_timeout``: a server that
    vanished (host down, firewall dropping packets) is noticed within about 10 s
    on an idle connection, and data left unacknowledged fails the call after the
    same time. https://www.postgresql.org/docs/current/libpq-connect.html
    """
    given = conninfo_to_dict(dsn)
    bounds: dict[str, Any] = {"connect_timeout": connect_timeout_s, "keepalives": 1,
                              "keepalives_idle": 5, "keepalives_interval": 2,
                              "keepalives_count": 3, "tcp_user_timeout": 10_000}
    return {k: v for k, v in bounds.items() if k not in given}


def lock_key(conn: psycopg.Connection[Any]) -> int:
    """The advisory-lock key of the log in the connection's first schema (a signed int64)."""
    row = conn.execute("SELECT current_schema()").fetchone()
    schema = row[0] if row is not None else None
    if schema is None:
        raise AuditUnavailable("PostgreSQL search_path names no existing schema for the "
                               "decision log; create it or fix options=-csearch_path=...")
    digest = hashlib.sha256(f"pdp.decision-log:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def migrate(conn: psycopg.Connection[Any], key: int) -> int:
    """Create or migrate the tables to :data:`SCHEMA_VERSION` under the log's lock.

    Returns the version found; refuses (``AuditUnavailable``) a schema written
    by a newer release.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                     "id int PRIMARY KEY CHECK (id = 1), version int NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
        found = row[0] if row is not None else 0
        if found > SCHEMA_VERSION:
            raise AuditUnavailable(
                f"decision log schema version {found} is newer than this release's "
                f"{SCHEMA_VERSION}; upgrade the PDP")
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
        if found < SCHEMA_VERSION:
            conn.execute("INSERT INTO schema_version (id, version) VALUES (1, %s) "
                         "ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
                         (SCHEMA_VERSION,))
    return found


def where_clause(flt: DecisionFilter, *, before: int | None = None) -> tuple[str, list[Any]]:
    """``DecisionFilter`` as PostgreSQL ``WHERE``, with the meaning of ``query.matches``."""
    clauses: list[str] = []
    params: list[Any] = []
    for name in _EQUAL:
        if (value := getattr(flt, name)) is not None:
            clauses.append(f"{name} = %s")
            params.append(_pg(value))
    if flt.principal_prefix is not None:
        clauses.append("principal >= %s")
        params.append(_pg(flt.principal_prefix))
        if (upper := prefix_upper_bound(flt.principal_prefix)) is not None:
            clauses.append("principal < %s")
            params.append(_pg(upper))
    if flt.decision_id_prefix is not None:  # a range on the unique index, as for principals
        clauses.append("decision_id >= %s")
        params.append(_pg(flt.decision_id_prefix))
        if (upper := prefix_upper_bound(flt.decision_id_prefix)) is not None:
            clauses.append("decision_id < %s")
            params.append(_pg(upper))
    for name, column in (("policy", "policies"), ("reason_code", "reason_codes")):
        if (value := getattr(flt, name)) is not None:  # an element, not a substring
            clauses.append(f"%s = ANY({column})")
            params.append(_pg(value))
    if flt.since is not None:
        clauses.append("ts >= %s")
        params.append(flt.since)
    if flt.until is not None:
        clauses.append("ts < %s")
        params.append(flt.until)
    if before is not None:
        clauses.append("seq < %s")
        params.append(before)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _columns_disagree(values: Mapping[str, Any], record: dict[str, Any]) -> bool:
    try:
        cols = columns_of(record)
    except ValueError:
        return True
    expected = {
        "seq": record["seq"], "decision_id": _pg(cols.decision_id), "kind": _pg(cols.kind),
        "ts": cols.ts, "principal": _pg(cols.principal), "action": _pg(cols.action),
        "resource": _pg(cols.resource), "decision": _pg(cols.decision), "pep": _pg(cols.pep),
        "policies": [_pg(p) for p in cols.policies],
        "reason_codes": [_pg(c) for c in cols.reason_codes],
        "prev_hash": record["prev_hash"], "hash": record["hash"],
    }
    return any(values[name] != value for name, value in expected.items())


__all__ = ["COLUMNS", "MIGRATIONS", "SCHEMA_VERSION", "PostgresDecisionLog", "lock_key",
           "migrate", "network_bounds", "where_clause"]
