"""What the SQLite and PostgreSQL decision logs share: every read, verification,
checkpoints, retention's deletes and the writer's error handling, written once
over a :class:`~pdp.audit.sql.dialect.Dialect`.

A store subclasses :class:`SqlDecisionLog` and supplies its connections
(:meth:`~SqlDecisionLog._reading` for short lookups,
:meth:`~SqlDecisionLog._scanning` for whole-log scans,
:meth:`~SqlDecisionLog._maintaining` for checkpoint and retention writes,
:meth:`~SqlDecisionLog._open_writer` for the writer thread) and
:meth:`~SqlDecisionLog._write_batch`: how a batch extends the chain (SQLite's
cached head and file lock, PostgreSQL's advisory lock and ``COPY``) is where
the two really differ.

Whole-log scans read a chunk of rows per statement, so no read transaction
stays open for the length of an export or a verification.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pdp.audit.chain.checkpoint import Checkpoint
from pdp.audit.chain.groupcommit import Append, GroupCommitLog, Outcome, Row, unavailable
from pdp.audit.chain.hashchain import GENESIS, ChainReport, verify_stored
from pdp.audit.errors import AuditUnavailable
from pdp.audit.query import DecisionFilter, Page, check_limit, decode_cursor, encode_cursor
from pdp.audit.records import COLUMNS, STORED, StoredRow, columns_of, loaded
from pdp.audit.sql.dialect import IN_CHUNK, Connection, Dialect
from pdp.audit.sql.filters import where_clause

SCAN_CHUNK = 1000
"""Rows per statement when streaming the whole log."""

DELETE_CHUNK = 10_000
"""Rows deleted per transaction by retention, so appends never wait long for the lock."""

HEAD = "SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1"


_CHECKPOINT_COLUMNS = "seq, head_hash, ts, kind, key_id, signature"

log = logging.getLogger(__name__)


class OwnedConnection(Connection, Protocol):
    """A connection its opener closes."""

    def close(self) -> None: ...


C = TypeVar("C", bound=OwnedConnection)


@contextmanager
def connection_for_one_call(dialect: Dialect, connect: Callable[[], C],
                            where: str) -> Iterator[C]:
    """A connection opened for one call and closed after it; the driver's errors,
    opening or not, become ``AuditUnavailable`` naming ``where`` the log is."""
    try:
        conn = connect()
    except dialect.errors as exc:
        raise AuditUnavailable(f"cannot reach decision log {where}: {exc}") from exc
    try:
        yield conn
    except dialect.errors as exc:
        raise AuditUnavailable(f"decision log {where} failed: {exc}") from exc
    finally:
        conn.close()


def refuse_newer_schema(found: int, supported: int) -> None:
    """A schema written by a newer release is refused rather than guessed at."""
    if found > supported:
        raise AuditUnavailable(f"decision log schema version {found} is newer than this "
                               f"release's {supported}; upgrade the PDP")


def read_head(conn: Connection) -> tuple[int, str]:
    """``(seq, hash)`` of the newest record, or ``(0, GENESIS)`` for an empty log."""
    row = conn.execute(HEAD).fetchone()
    return (row[0], row[1]) if row is not None else (0, GENESIS)


def stored_records(dialect: Dialect, conn: Connection,
                   ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``decision_id -> stored record`` for those of ``ids`` already in the log
    (the writer settles retried appends with these)."""
    found: dict[str, dict[str, Any]] = {}
    wanted = [dialect.text(i) for i in ids]  # as the column holds them
    for start in range(0, len(wanted), IN_CHUNK):
        chunk = wanted[start:start + IN_CHUNK]
        sql = (f"SELECT decision_id, {STORED} FROM decisions "
               f"WHERE decision_id IN ({dialect.marks(len(chunk))})")
        for decision_id, *stored in conn.execute(sql, chunk).fetchall():
            found[decision_id] = loaded(*stored)
    return found


def columns_disagree(dialect: Dialect) -> Callable[[Mapping[str, Any], dict[str, Any]], bool]:
    """For ``verify_stored``: does a row's query columns say something its record does not?

    A changed column (say ``decision`` flipped in place) would mislead filters
    without touching the chain, so verification reports it as ``index mismatch``.
    """
    text, text_list = dialect.text, dialect.text_list

    def disagree(values: Mapping[str, Any], record: dict[str, Any]) -> bool:
        try:
            cols = columns_of(record)
        except ValueError:
            return True
        expected = {
            "seq": record["seq"], "decision_id": text(cols.decision_id), "kind": text(cols.kind),
            "ts": cols.ts, "principal": text(cols.principal), "action": text(cols.action),
            "resource": text(cols.resource), "decision": text(cols.decision),
            "pep": text(cols.pep), "policies": text_list(cols.policies),
            "reason_codes": text_list(cols.reason_codes), "prev_hash": record["prev_hash"],
            "hash": record["hash"],
        }
        return any(values[name] != value for name, value in expected.items())

    return disagree


class SqlDecisionLog(GroupCommitLog, Generic[C]):
    """A SQL :class:`~pdp.audit.store.DecisionStore` and
    :class:`~pdp.audit.chain.checkpoint.CheckpointStore`, but for how its writer
    connects (:meth:`_open_writer`) and extends the chain (:meth:`_write_batch`).

    Every connection method raises ``AuditUnavailable`` when the store cannot
    be reached or a statement fails.
    """

    dialect: ClassVar[Dialect]

    _conn: C | None
    """The writer thread's connection; None after a failure (the next batch reopens it)."""

    RETENTION_ALSO_DELETES: ClassVar[tuple[str, ...]] = ()
    """Statements run before each retention chunk is deleted, in its transaction;
    ``{chunk}`` selects the chunk's seqs (SQLite: its principal index entries)."""

    # -- the writer thread ------------------------------------------------------

    def _open_writer(self) -> C:
        """Connect, migrate and read the head (writer thread); raise if the store is unreachable."""
        raise NotImplementedError

    def _write_batch(self, conn: C, batch: list[Append]) -> tuple[list[Outcome], list[Row]]:
        """Chain ``batch`` after the stored head and commit it in one transaction."""
        raise NotImplementedError

    def _write(self, batch: list[Append]) -> list[Outcome]:
        try:
            if self._conn is None:  # dropped after an earlier failure: start afresh
                self._conn = self._open_writer()
            outcomes, rows = self._write_batch(self._conn, batch)
        except Exception as exc:
            # Nothing of the batch is stored; a fresh connection re-reads the head.
            log.error("decision log commit failed: %s", exc)
            self._drop_writer()
            return [unavailable(exc) for _ in batch]
        self._committed(rows)
        return outcomes

    def _drop_writer(self) -> None:
        """Close the writer's connection after a failure."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _writer_stopped(self) -> None:
        self._drop_writer()

    # -- the store's connections ------------------------------------------------

    def _reading(self) -> AbstractContextManager[Connection]:
        """A connection for one short read."""
        raise NotImplementedError

    def _scanning(self) -> AbstractContextManager[Connection]:
        """A connection for a scan of the whole log (several statements)."""
        return self._reading()

    def _maintaining(self) -> AbstractContextManager[Connection]:
        """A write connection for checkpoints and retention, usable after the writer stopped."""
        raise NotImplementedError

    # -- QueryableLog -----------------------------------------------------------

    def get(self, decision_id: str) -> dict[str, Any] | None:
        d = self.dialect
        with self._reading() as conn:
            row = conn.execute(d.sql(f"SELECT {STORED} FROM decisions WHERE decision_id = ?"),
                               (d.text(decision_id),)).fetchone()
        return None if row is None else loaded(*row)

    def tail(self, n: int) -> list[dict[str, Any]]:
        if n <= 0:
            return []
        with self._reading() as conn:
            rows = conn.execute(
                self.dialect.sql(f"SELECT {STORED} FROM decisions ORDER BY seq DESC LIMIT ?"),
                (n,)).fetchall()
        return [loaded(*row) for row in reversed(rows)]

    def query(self, filters: DecisionFilter, limit: int = 100,
              cursor: str | None = None) -> Page:
        check_limit(limit)
        sql, params = self._page_sql(filters, limit + 1, decode_cursor(cursor))  # +1: more?
        with self._reading() as conn:
            rows = conn.execute(sql, params).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(records=[loaded(*row) for row in rows],
                    next_cursor=encode_cursor(rows[-1][1]) if more else None)

    def _page_sql(self, flt: DecisionFilter, limit: int,
                  before: int | None) -> tuple[str, list[Any]]:
        """The newest ``limit`` records passing ``flt`` (below seq ``before``), newest first,
        as ``STORED`` columns. A store may choose its rows more cleverly (SQLite does)."""
        where, params = where_clause(self.dialect, flt, before=before)
        sql = f"SELECT {STORED} FROM decisions{where} ORDER BY seq DESC LIMIT ?"
        return self.dialect.sql(sql), [*params, limit]

    def iter_all(self) -> Iterator[dict[str, Any]]:
        for row in self.iter_stored():
            yield row.record()

    def iter_stored(self) -> Iterator[StoredRow]:
        for row in self._rows(f"seq, {STORED}"):
            yield StoredRow(*row[1:])

    def verify(self, *, start_seq: int = 1, start_hash: str = GENESIS,
               end_seq: int | None = None) -> ChainReport:
        """Check the chain over the ``record`` JSON, and every query column against it.

        ``start_seq``/``start_hash`` start the check at a retention anchor
        instead of genesis; ``end_seq`` stops it there.
        """
        rows = self._rows(", ".join(COLUMNS), after=start_seq - 1, through=end_seq)
        return verify_stored((dict(zip(COLUMNS, row)) for row in rows),
                             columns_disagree(self.dialect),
                             start_seq=start_seq, start_hash=start_hash)

    def _rows(self, columns: str, after: int = 0,
              through: int | None = None) -> Iterator[tuple[Any, ...]]:
        """Rows with ``after < seq <= through`` in seq order, a chunk per statement."""
        last = after
        end = through if through is not None else 2**63 - 1
        sql = self.dialect.sql(f"SELECT {columns} FROM decisions WHERE seq > ? AND seq <= ? "
                               "ORDER BY seq LIMIT ?")
        with self._scanning() as conn:
            while True:
                rows = conn.execute(sql, (last, end, SCAN_CHUNK)).fetchall()
                yield from rows
                if len(rows) < SCAN_CHUNK:
                    return
                last = rows[-1][0]

    # -- CheckpointStore and retention ------------------------------------------

    def head(self) -> tuple[int, str]:
        with self._reading() as conn:
            return read_head(conn)

    def first_seq(self) -> int | None:
        with self._reading() as conn:
            first: int | None = conn.execute("SELECT min(seq) FROM decisions").fetchone()[0]
        return first

    def first_seq_at_or_after(self, ts: str) -> int | None:
        """The lowest seq whose timestamp is ``ts`` or later (retention's cut)."""
        with self._reading() as conn:
            first: int | None = conn.execute(
                self.dialect.sql("SELECT min(seq) FROM decisions WHERE ts >= ?"),
                (ts,)).fetchone()[0]
        return first

    def checkpoints(self) -> list[Checkpoint]:
        with self._reading() as conn:
            rows = conn.execute(f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints "
                                "ORDER BY seq, id").fetchall()
        return [Checkpoint(*row) for row in rows]

    def hashes_at(self, seqs: Iterable[int]) -> dict[int, tuple[str, str]]:
        wanted = sorted(set(seqs))
        found: dict[int, tuple[str, str]] = {}
        with self._reading() as conn:
            for start in range(0, len(wanted), IN_CHUNK):
                chunk = wanted[start:start + IN_CHUNK]
                sql = ("SELECT seq, hash, decision_id FROM decisions "
                       f"WHERE seq IN ({self.dialect.marks(len(chunk))})")
                for seq, digest, rid in conn.execute(sql, chunk).fetchall():
                    found[seq] = (digest, rid)
        return found

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        with self._maintaining() as conn:
            conn.execute(
                self.dialect.sql(f"INSERT INTO checkpoints ({_CHECKPOINT_COLUMNS}) "
                                 "VALUES (?, ?, ?, ?, ?, ?)"),
                (checkpoint.seq, checkpoint.head_hash, checkpoint.timestamp, checkpoint.kind,
                 checkpoint.key_id, checkpoint.signature))

    def delete_through(self, seq: int) -> int:
        """Delete every record with ``seq`` at most ``seq`` (retention); returns how many.

        Deletes in chunks of :data:`DELETE_CHUNK`, one short transaction each.
        """
        d = self.dialect
        chunk = "SELECT seq FROM decisions WHERE seq <= ? ORDER BY seq LIMIT ?"
        statements = [d.sql(s.format(chunk=chunk)) for s in self.RETENTION_ALSO_DELETES]
        delete = d.sql(f"DELETE FROM decisions WHERE seq IN ({chunk})")
        deleted = 0
        with self._maintaining() as conn:
            while True:
                with d.write_transaction(conn):
                    for statement in statements:
                        conn.execute(statement, (seq, DELETE_CHUNK))
                    count = conn.execute(delete, (seq, DELETE_CHUNK)).rowcount
                deleted += count
                if count < DELETE_CHUNK:
                    return deleted


__all__ = ["DELETE_CHUNK", "HEAD", "SCAN_CHUNK", "SqlDecisionLog", "columns_disagree",
           "connection_for_one_call", "read_head", "refuse_newer_schema", "stored_records"]
