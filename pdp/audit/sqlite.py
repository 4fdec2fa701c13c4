"""The default decision log: one SQLite file in WAL mode, written by group commit.

Durability costs one fsync per transaction, not per record. So one writer
thread takes everything queued since its last commit (up to ``batch_max``),
chains and inserts it in a single transaction, commits, and only then tells
every waiting caller "stored". Under load a commit carries hundreds of
records; when idle, one. This is the group commit of database write-ahead
logs (e.g. PostgreSQL's ``commit_delay``) without the delay.

The chain head (last ``seq`` and ``hash``) is read from the file at open, so
the chain continues across restarts. If another process appended meanwhile,
the next insert collides on ``seq``; the batch is then redone under the write
lock from the head on disk, so several processes sharing a file keep one chain.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import queue
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdp.audit import sqlite_read
from pdp.audit.errors import AuditUnavailable, DuplicateDecision
from pdp.audit.hashchain import GENESIS, ChainReport, canonical, hash_body
from pdp.audit.query import DecisionFilter, Page
from pdp.audit.records import PreparedRecord, prepare, same_record
from pdp.audit.sqlite_schema import (SYNCHRONOUS, connect, insert_atomically, insert_rows,
                                     migrate, read_head, rollback_quietly)

log = logging.getLogger(__name__)

Outcome = dict[str, Any] | BaseException
_STOP = object()  # queued by close(): commit what came before, then exit


@dataclass(slots=True)
class _Append:
    """One queued record and the future its caller waits on."""

    prepared: PreparedRecord
    future: asyncio.Future[dict[str, Any]] | concurrent.futures.Future[dict[str, Any]]
    loop: asyncio.AbstractEventLoop | None  # None: a concurrent.futures.Future (append_sync)


class SqliteDecisionLog:
    """A :class:`~pdp.audit.store.DecisionStore` in one SQLite file.

    ``commits`` counts write transactions, so ``appended / commits`` is the
    mean group size. Reads open their own connections and never wait for the
    writer (WAL). Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: Path, *, batch_max: int = 512, synchronous: str = "FULL",
                 busy_timeout_ms: int = 5000) -> None:
        if batch_max < 1:
            raise ValueError("batch_max must be at least 1")
        synchronous = synchronous.upper()
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS)}")
        self.path = Path(path)
        self.batch_max = batch_max
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self.commits = 0  # write transactions committed
        self.appended = 0  # records they carried
        self._seq, self._head = 0, GENESIS  # last committed record; read at open
        self._queue: queue.SimpleQueue[_Append | object] = queue.SimpleQueue()
        self._gate = threading.Lock()  # orders "closed?" checks against the STOP marker
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn: sqlite3.Connection | None = self._open_writer()
        except (OSError, sqlite3.Error) as exc:
            raise AuditUnavailable(f"cannot open decision log {self.path}: {exc}") from exc
        self._thread = threading.Thread(target=self._run, name="pdp-audit-writer", daemon=True)
        self._thread.start()

    # -- appending ----------------------------------------------------------

    async def append(self, record: dict[str, Any]) -> dict[str, Any]:
        prepared = prepare(record)  # bad records fail here, in the caller, not in a batch
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._enqueue(_Append(prepared, future, loop))
        # A cancelled caller does not un-queue the record: it may still be stored.
        return await future

    def append_sync(self, record: dict[str, Any]) -> dict[str, Any]:
        prepared = prepare(record)
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        self._enqueue(_Append(prepared, future, None))
        return future.result()

    def close(self) -> None:
        with self._gate:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)
        self._thread.join()

    def __enter__(self) -> SqliteDecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _enqueue(self, item: _Append) -> None:
        with self._gate:
            if self._closed:
                raise AuditUnavailable("decision log is closed")
            self._queue.put(item)

    # -- the writer thread --------------------------------------------------

    def _run(self) -> None:
        stop = False
        while not stop:
            batch: list[_Append] = []
            try:
                item = self._queue.get()
                while item is not _STOP:
                    batch.append(item)  # type: ignore[arg-type]
                    if len(batch) >= self.batch_max:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                stop = item is _STOP
                if batch:
                    self._settle(batch, self._write(batch))
            except BaseException as exc:  # never die with callers left waiting
                log.exception("decision log writer failed a batch of %d", len(batch))
                try:
                    self._settle(batch, [_unavailable(exc) for _ in batch])
                except BaseException:
                    log.exception("decision log writer could not report a failure")
        if self._conn is not None:
            self._conn.close()

    def _write(self, batch: list[_Append]) -> list[Outcome]:
        """Chain, insert and commit ``batch`` atomically; one outcome per item."""
        try:
            if self._conn is None:  # dropped after an earlier failure: start afresh
                self._conn = self._open_writer()
            conn = self._conn
            try:
                # Fast path: the cached head is current and no decision_id repeats an
                # old one. Few statements matter: each one hands the GIL over and back.
                outcomes, rows = self._chain(batch, self._seq, self._head, {})
                insert_atomically(conn, rows)
            except sqlite3.IntegrityError:
                # Another process appended (our seq is taken) or a decision_id is
                # already stored: redo under the write lock from what the file holds.
                rollback_quietly(conn)
                conn.execute("BEGIN IMMEDIATE")
                seq, head = read_head(conn)
                known = _stored_texts(conn, [i.prepared.columns.decision_id for i in batch])
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
            return [_unavailable(exc) for _ in batch]
        if rows:
            self._seq, self._head = rows[-1][0], rows[-1][-1]
            self.commits += 1
            self.appended += len(rows)
        return outcomes

    @staticmethod
    def _chain(batch: list[_Append], seq: int, head: str,
               known: dict[str, str]) -> tuple[list[Outcome], list[tuple[Any, ...]]]:
        """Seal each record after ``(seq, head)``; settle repeats of ``known`` decision_ids."""
        outcomes: list[Outcome] = []
        rows: list[tuple[Any, ...]] = []
        for item in batch:
            p, cols = item.prepared, item.prepared.columns
            if (text := known.get(cols.decision_id)) is not None:  # a retry, or a clash
                outcomes.append(json.loads(text) if same_record(p, text) else DuplicateDecision(
                    f"decision_id {cols.decision_id} already stored with other content"))
                continue
            seq += 1
            digest = hash_body(head, p.body_json)
            text = p.stored_text(seq, head, digest)
            rows.append((seq, cols.decision_id, cols.kind, cols.ts, cols.principal, cols.action,
                         cols.resource, cols.decision, cols.pep, canonical(list(cols.policies)),
                         canonical(list(cols.reason_codes)), text, head, digest))
            known[cols.decision_id] = text
            outcomes.append(p.stored(seq, head, digest))
            head = digest
        return outcomes, rows

    def _settle(self, batch: list[_Append], outcomes: list[Outcome]) -> None:
        """Hand each caller its outcome: one wake-up per event loop, not per record."""
        per_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Outcome]]] = defaultdict(list)
        for item, outcome in zip(batch, outcomes):
            if item.loop is not None:
                per_loop[item.loop].append((item.future, outcome))
            else:
                _resolve(item.future, outcome)
        for loop, pairs in per_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve_all, pairs)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass

    def _open_writer(self) -> sqlite3.Connection:
        conn = connect(self.path, busy_timeout_ms=self.busy_timeout_ms,
                       synchronous=self.synchronous, writer=True)
        try:
            migrate(conn)
            self._seq, self._head = read_head(conn)  # the chain continues across restarts
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

    def verify(self) -> ChainReport:
        return self._reader().verify()


def _stored_texts(conn: sqlite3.Connection, ids: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for start in range(0, len(ids), 500):  # stay far below SQLite's bound-parameter limit
        chunk = ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT decision_id, record FROM decisions WHERE decision_id IN ({marks})"
        found.update(conn.execute(sql, chunk).fetchall())
    return found


def _unavailable(exc: BaseException) -> AuditUnavailable:
    err = AuditUnavailable(f"decision log could not commit: {exc}")
    err.__cause__ = exc
    return err


def _resolve(future: Any, outcome: Outcome) -> None:
    if future.done():  # the caller gave up (cancelled)
        return
    try:
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except (asyncio.InvalidStateError, concurrent.futures.InvalidStateError):
        pass  # cancelled between the check and the set


def _resolve_all(pairs: list[tuple[Any, Outcome]]) -> None:
    for future, outcome in pairs:
        _resolve(future, outcome)


__all__ = ["SqliteDecisionLog"]
