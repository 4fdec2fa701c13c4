"""Group commit: one writer thread, one transaction per batch, every caller told after it.

Durability costs one fsync (SQLite) or one WAL flush (PostgreSQL) per
transaction, not per record. So one writer thread takes everything queued
since its last commit (up to ``batch_max``), chains and inserts it in a single
transaction, commits, and only then tells every waiting caller "stored".
Under load a commit carries hundreds of records; when idle, one. This is the
group commit of database write-ahead logs (e.g. PostgreSQL's
``commit_delay``) without the delay.

:class:`GroupCommitLog` is that machinery; a store subclasses it and writes a
batch in :meth:`GroupCommitLog._write`. The batch is chained here too
(:meth:`GroupCommitLog._chain`), so every store seals records the same way.

**Bounded waits.** With ``commit_timeout_s`` set (``[audit] commit_timeout_s``, ``pdp
serve`` default 2 s), no caller waits longer than that: past it the append raises
``AuditUnavailable`` (the decision becomes a deny with ``audit.unavailable``); one timer
per event loop keeps the bounds of the records waiting there
(:mod:`pdp.audit.chain.deadlines`). A record its caller gave up on before the writer
took it is never written. A watchdog thread aborts a transaction running longer than the
bound (:meth:`GroupCommitLog._abort_write`: PostgreSQL shuts its socket down), so a
database that holds the connection open but answers nothing cannot hold the writer
either; after a failure the idle writer probes the store every ``commit_timeout_s``
until it answers again (:meth:`GroupCommitLog.commit_health` says which, for
``/readyz``). The one ambiguity left is TCP's own: a transaction whose COMMIT reached
the server just as its caller gave up may still be stored, so the log can hold a record
whose caller was answered ``audit.unavailable`` (a deny), never the other way round.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from pdp.audit.chain.deadlines import LoopDeadlines
from pdp.audit.chain.hashchain import hash_body, stored_text
from pdp.audit.errors import AuditUnavailable, DuplicateDecision
from pdp.audit.records import PreparedRecord, loaded, prepare, same_record

log = logging.getLogger(__name__)

Outcome = dict[str, Any] | BaseException
Row = tuple[Any, ...]
_T = TypeVar("_T")


class _Stop(Enum):
    STOP = "stop"


_STOP = _Stop.STOP  # queued by close(): commit what came before, then exit
_QUEUED, _TAKEN, _ABANDONED = 0, 1, 2  # Append.state: who owns the record now


@dataclass(slots=True)
class Append:
    """One queued record and the future its caller waits on."""

    prepared: PreparedRecord
    # None for the records of a _Group: the group's own future answers for them all.
    future: asyncio.Future[dict[str, Any]] | concurrent.futures.Future[dict[str, Any]] | None
    loop: asyncio.AbstractEventLoop | None  # None: a concurrent.futures.Future (append_sync)
    state: int = _QUEUED  # _TAKEN by the writer or _ABANDONED by its caller, whichever first


@dataclass(slots=True)
class _Group:
    """Records that must commit together, in order, in a transaction of their own."""

    items: list[Append]
    future: concurrent.futures.Future[list[Outcome]]
    state: int = _QUEUED


@dataclass(frozen=True, slots=True)
class CommitHealth:
    """Can the log commit right now? What ``/readyz`` reports for the decision log."""

    ok: bool
    error: str | None = None  # why not: the last failure, or the commit running too long
    pending_s: float | None = None  # how long the running transaction has taken so far

    def as_dict(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "unavailable", "error": self.error,
                "pending_s": None if self.pending_s is None else round(self.pending_s, 3)}


class GroupCommitLog:
    """The appending half of a store: queue, writer thread, batches, outcomes.

    ``commits`` counts write transactions, so ``appended / commits`` is the
    mean group size. Subclasses implement :meth:`_write` (and may override
    :meth:`_writer_stopped` to release their connection).
    """

    thread_name = "pdp-audit-writer"

    def __init__(self, *, batch_max: int, commit_timeout_s: float | None = None) -> None:
        if batch_max < 1:
            raise ValueError("batch_max must be at least 1")
        if commit_timeout_s is not None and commit_timeout_s <= 0:
            raise ValueError("commit_timeout_s must be positive (or None: wait forever)")
        self.batch_max = batch_max
        self.commit_timeout_s = commit_timeout_s
        self.commits = 0  # write transactions committed
        self.appended = 0  # records they carried
        self._queue: queue.SimpleQueue[Append | _Group | _Stop] = queue.SimpleQueue()
        self._gate = threading.Lock()  # orders "closed?" checks against the STOP marker
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._claims = threading.Lock()  # Append.state: the writer takes, a caller abandons
        self._busy_since: float | None = None  # monotonic start of the running write
        self._writes = 0  # write attempts started (the watchdog aborts each at most once)
        self._last_error: str | None = None  # the last write attempt failed: why
        self._watchdog = threading.Thread(target=self._watch, name=f"{self.thread_name}-watchdog",
                                          daemon=True)
        # Entered around each attempt (connect, write, probe): marks the writer busy for
        # the watchdog. One object for them all, not one built per batch.
        self._busy = _Watched(self)
        # Per event loop, the records appending there wait on, for their commit bound.
        self._deadlines: dict[asyncio.AbstractEventLoop, LoopDeadlines[Append]] = {}

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called: appends are refused, reads still work."""
        return self._closed

    def _start_writer(self) -> None:
        self._thread.start()
        if self.commit_timeout_s is not None:
            self._watchdog.start()

    def commit_health(self) -> CommitHealth:
        """Not ok while the last write attempt failed (until a later one or a probe
        succeeds) or the running one has taken longer than ``commit_timeout_s``."""
        since = self._busy_since
        pending = None if since is None else time.monotonic() - since
        if self._last_error is not None:
            return CommitHealth(False, self._last_error, pending)
        if (pending is not None and self.commit_timeout_s is not None
                and pending > self.commit_timeout_s):
            return CommitHealth(False, f"a commit has been pending for {pending:.1f}s "
                                       f"(bound {self.commit_timeout_s}s)", pending)
        return CommitHealth(True, None, pending)

    # -- appending ----------------------------------------------------------

    async def append(self, record: dict[str, Any]) -> dict[str, Any]:
        prepared = prepare(record)  # bad records fail here, in the caller, not in a batch
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        item = Append(prepared, future, loop)
        self._enqueue(item)
        if self.commit_timeout_s is not None:  # expired by the loop's one timer (.deadlines)
            self._deadlines_on(loop).watch(item)
        # A cancelled caller does not un-queue the record: it may still be stored.
        return await future

    def _deadlines_on(self, loop: asyncio.AbstractEventLoop) -> LoopDeadlines[Append]:
        """The commit bounds of the records waiting on ``loop``; forgotten once none waits."""
        deadlines = self._deadlines.get(loop)
        if deadlines is None:
            assert self.commit_timeout_s is not None
            deadlines = LoopDeadlines(loop, self.commit_timeout_s, self._expire,
                                      lambda: self._deadlines.pop(loop, None))
            self._deadlines[loop] = deadlines
        return deadlines

    def append_sync(self, record: dict[str, Any]) -> dict[str, Any]:
        prepared = prepare(record)
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        item = Append(prepared, future, None)
        self._enqueue(item)
        try:
            return future.result(timeout=self.commit_timeout_s)
        except concurrent.futures.TimeoutError:
            if (overtime := self._expire(item)) is not None:
                try:
                    return future.result(timeout=overtime)
                except concurrent.futures.TimeoutError:
                    self._refuse_overdue(item)
            return future.result()  # the writer's outcome if it came meanwhile, else ours

    def append_many_sync(self, records: Iterable[dict[str, Any]]) -> list[Outcome]:
        """Store ``records`` in this order, in one transaction of their own: all or none.

        Returns one outcome per record: the stored record, or the exception
        that refused it (``AuditUnavailable`` for all of them when the
        transaction failed). ``ValueError`` for a malformed record is raised
        before anything is queued. The spool ships through this, so spooled
        records reach the chain in the order they were spooled.
        """
        items = [Append(prepare(r), None, None) for r in records]
        if not items:
            return []
        future: concurrent.futures.Future[list[Outcome]] = concurrent.futures.Future()
        group = _Group(items, future)
        with self._gate:
            if self._closed:
                raise AuditUnavailable("decision log is closed")
            self._queue.put(group)
        try:
            return future.result(timeout=self.commit_timeout_s)
        except concurrent.futures.TimeoutError:
            with self._claims:
                if group.state == _QUEUED:
                    group.state = _ABANDONED  # never written: the spool keeps them
            late: list[Outcome] = [self._late() for _ in items]
            _resolve(future, late)
            return future.result()

    def close(self) -> None:
        with self._gate:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)
        if self._thread.is_alive():
            self._thread.join()
        if self._watchdog.is_alive():  # ends within a tick of the writer: a closed log
            self._watchdog.join()      # leaves no thread behind (a fork may follow)

    def __enter__(self) -> GroupCommitLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _enqueue(self, item: Append) -> None:
        with self._gate:
            if self._closed:
                raise AuditUnavailable("decision log is closed")
            self._queue.put(item)

    def _expire(self, item: Append) -> float | None:
        """The caller's bound passed: withdraw the record if the writer has not taken it,
        and answer ``AuditUnavailable`` (on the caller's loop for ``append``).

        A record the writer has taken is being written: answering now could refuse a
        decision whose record the write then commits, and the log would hold an answer
        nobody was given. So its caller waits for the write's own outcome, which the
        watchdog ends within ``commit_timeout_s`` of the write's start; returns how much
        longer (the caller's own timer, :meth:`_refuse_overdue` at its end: a write that
        even the watchdog cannot end must not hold the caller for ever).
        """
        with self._claims:
            if item.state == _QUEUED:
                item.state = _ABANDONED
            elif item.state == _TAKEN:  # each caller's bound passes once: one extension
                overtime = self._overtime_s()
                if item.loop is not None:  # on that loop's thread: the sweep called us
                    item.loop.call_later(overtime, self._refuse_overdue, item)
                return overtime
        _resolve(item.future, self._late())
        return None

    def _overtime_s(self) -> float:
        """How long a caller whose record is being written waits past its bound: the
        watchdog's own bound for the write, its tick, and time to hand the outcome back."""
        assert self.commit_timeout_s is not None
        return self.commit_timeout_s * 1.25 + 0.1

    def _refuse_overdue(self, item: Append) -> None:
        """The write outlived even the watchdog: answer ``AuditUnavailable`` (a no-op if
        the write's outcome came first)."""
        _resolve(item.future, self._late())

    def _late(self) -> AuditUnavailable:
        return AuditUnavailable(f"decision log did not commit within {self.commit_timeout_s}s")

    def _take(self, batch: list[Append]) -> list[Append]:
        """The records of ``batch`` still wanted, now the writer's (their callers can no
        longer withdraw them)."""
        with self._claims:
            kept = [item for item in batch if item.state == _QUEUED]
            for item in kept:
                item.state = _TAKEN
        return kept

    # -- the writer thread --------------------------------------------------

    def _run(self) -> None:
        pending: list[Append | _Group] = []  # taken from the queue, not yet written
        stop = False
        while True:
            batch: list[Append] = []
            group: _Group | None = None
            try:
                if not pending and not stop:
                    item = self._next_or_probe()  # idle: wait for the next record
                    if item is None:
                        continue
                    if item is _STOP:
                        stop = True
                    else:
                        pending.append(item)
                # empty() first: a get_nowait on an empty queue raises, once per batch.
                while not stop and len(pending) < self.batch_max and not self._queue.empty():
                    item = self._queue.get_nowait()  # only this thread takes from the queue
                    if item is _STOP:
                        stop = True
                    else:
                        pending.append(item)
                if not pending:
                    if stop:
                        break
                    continue
                if isinstance(first := pending[0], _Group):
                    group = first
                    del pending[0]
                    if (failed := self._ensure_ready()) is not None:
                        refused: list[Outcome] = [failed for _ in group.items]
                        _resolve(group.future, refused)
                        continue
                    with self._turn():
                        with self._claims:
                            if group.state != _QUEUED:
                                continue  # its caller gave up: the spool still holds them
                            group.state = _TAKEN
                        written = self._timed_write(group.items)
                    _resolve(group.future, self._made_durable(written))
                    self._after_commit()
                    continue
                run: list[Append] = []  # the records before the next group
                for queued in pending:
                    if isinstance(queued, _Group):
                        break
                    run.append(queued)
                take = self._batch_size(len(run))
                batch, pending = run[:take], pending[take:]
                if (failed := self._ensure_ready()) is not None:
                    self._settle(batch, [failed for _ in batch])
                    continue
                with self._turn():  # records are taken only once it is ours (see _turn)
                    batch = self._take(batch)
                    outcomes = self._timed_write(batch) if batch else []
                if batch:
                    self._settle(batch, self._made_durable(outcomes))
                    self._after_commit()
            except BaseException as exc:  # never die with callers left waiting
                log.exception("decision log writer failed a batch")
                try:
                    if group is not None:
                        lost: list[Outcome] = [unavailable(exc) for _ in group.items]
                        _resolve(group.future, lost)
                    self._settle(batch, [unavailable(exc) for _ in batch])
                except BaseException:
                    log.exception("decision log writer could not report a failure")
        self._writer_stopped()

    def _ensure_ready(self) -> AuditUnavailable | None:
        """Connect (if needed) before records are taken, so that a slow reconnect never
        carries records whose callers gave up meanwhile; the error if it failed."""
        if not self._must_connect():  # the usual batch: connected, nothing to watch
            return None
        try:
            with self._busy:
                self._ready_to_write()
        except Exception as exc:  # noqa: BLE001 - reported to every caller as unavailable
            log.error("decision log cannot connect: %s", exc)
            failed = unavailable(exc)
            self._last_error = str(failed)[:300]
            return failed
        return None

    def _timed_write(self, batch: list[Append]) -> list[Outcome]:
        """:meth:`_write` under the watchdog's eye, noting whether the store could commit."""
        with self._busy:
            outcomes = self._write(batch)
        # A failed write refuses every record alike (see _write): its first outcome says.
        failed = outcomes[0] if outcomes else None
        self._last_error = str(failed)[:300] if isinstance(failed, AuditUnavailable) else None
        return outcomes

    def _next_or_probe(self) -> Append | _Group | _Stop | None:
        """The next queued item; or, while the last write failed and nothing comes within
        ``commit_timeout_s``, a probe of the store and None."""
        if self._last_error is None or self.commit_timeout_s is None:
            return self._queue.get()
        try:
            return self._queue.get(timeout=self.commit_timeout_s)
        except queue.Empty:
            pass
        try:
            with self._busy:
                self._probe()
        except Exception as exc:  # noqa: BLE001 - still down: keep the reason, try again later
            self._last_error = f"decision log could not commit: {exc}"[:300]
        else:
            log.warning("decision log answers again")
            self._last_error = None
        return None

    def _watch(self) -> None:
        """Abort a write that runs past ``commit_timeout_s`` (at most once per write)."""
        assert self.commit_timeout_s is not None
        tick = min(0.05, self.commit_timeout_s / 10)
        aborted = 0
        while self._thread.is_alive() or not self._thread.ident:
            time.sleep(tick)
            since, write = self._busy_since, self._writes
            if since is None or write == aborted:
                continue
            if time.monotonic() - since > self.commit_timeout_s:
                aborted = write
                log.error("decision log write exceeded %ss: aborting it",
                          self.commit_timeout_s)
                try:
                    self._abort_write()
                except Exception:  # noqa: BLE001 - the next tick or write tries again
                    log.exception("could not abort the decision log write")

    def _abort_write(self) -> None:
        """Make the writer's blocked call return with an error (watchdog thread).

        Nothing by default: SQLite waits at most its ``busy_timeout``.
        """

    def _probe(self) -> None:
        """Check that the store could commit now; raise if not (writer thread, idle)."""

    def _must_connect(self) -> bool:
        """Whether :meth:`_ready_to_write` has anything to do before the next batch.

        False by default (a store that opens nothing ahead of :meth:`_write`), so the
        writer skips the watched call once per batch; a store that reconnects there
        says True while it is disconnected.
        """
        return False

    def _ready_to_write(self) -> None:
        """Open what :meth:`_write` needs if it is not open (writer thread); raise if not.

        Called only while :meth:`_must_connect` says so."""

    def _turn(self) -> AbstractContextManager[None]:
        """Entered around taking a batch and writing it: the store's turn to write.

        Nothing by default. A store whose file other processes append to waits here for
        its turn (SQLite: :mod:`pdp.audit.sqlite.writer_turns`), before it takes any
        record, so that a caller whose bound passes during the wait is refused and its
        record never written; the turn is let go before the callers are answered.
        """
        return _NO_TURN

    def _made_durable(self, outcomes: list[Outcome]) -> list[Outcome]:
        """Called once the turn was let go and before the callers hear ``outcomes``: what
        they are to hear. The outcomes as they are by default (the commit made them durable).

        A store whose commit leaves its records in the OS's cache (SQLite at ``durability =
        "power"``: :meth:`pdp.audit.sqlite.log.SqliteDecisionLog._made_durable`) syncs here,
        outside the turn, so another process's commit need not wait for this one's sync;
        if the sync fails it answers ``AuditUnavailable`` instead.
        """
        return outcomes

    def _batch_size(self, available: int) -> int:
        """How many of the ``available`` queued records (at most ``batch_max``) to write now.

        All of them by default. A store may prefer a few fixed sizes (SQLite:
        multiples of 64, so its multi-row INSERT statements stay prepared); the
        rest go first into the next transaction, which follows at once.
        """
        return available

    def _write(self, batch: list[Append]) -> list[Outcome]:
        """Chain, insert and commit ``batch`` atomically; one outcome per item.

        A write that failed answers ``AuditUnavailable`` for every item; one that
        committed answers none (a stored record, or ``DuplicateDecision``).
        """
        raise NotImplementedError

    def _writer_stopped(self) -> None:
        """The writer thread is about to exit: release what it holds."""

    def _after_commit(self) -> None:
        """Housekeeping after a batch, once its callers were told (SQLite: the principal index)."""

    def _committed(self, rows: list[Row]) -> None:
        if rows:
            self.commits += 1
            self.appended += len(rows)

    def _row(self, p: PreparedRecord, seq: int, head: str, digest: str, text: str) -> Row:
        """The stored row for one sealed record; see the store's column list."""
        raise NotImplementedError

    def _chain(self, batch: list[Append], seq: int, head: str,
               known: dict[str, dict[str, Any]] | None) -> tuple[list[Outcome], list[Row]]:
        """Seal each record after ``(seq, head)``.

        ``known`` maps decision_ids already stored to their stored records
        (:func:`~pdp.audit.records.loaded`), so a retry gets the stored copy and
        a clash ``DuplicateDecision``. None (the fast path) trusts the database's
        UNIQUE constraint to catch both; the caller then redoes the batch with
        ``known`` filled in.
        """
        outcomes: list[Outcome] = []
        rows: list[Row] = []
        row = self._row
        for item in batch:
            p = item.prepared
            if known is not None:
                decision_id = p.columns.decision_id
                if (stored := known.get(decision_id)) is not None:  # a retry, or a clash
                    outcomes.append(copy.deepcopy(stored) if same_record(p, stored) else
                                    DuplicateDecision(f"decision_id {decision_id} already "
                                                      "stored with other content"))
                    continue
            seq += 1
            text = stored_text(seq, p.body_json)
            digest = hash_body(head, text)
            rows.append(row(p, seq, head, digest, text))
            if known is not None:
                known[p.columns.decision_id] = loaded(text, seq, head, digest)
            outcomes.append(p.stored(seq, head, digest))
            head = digest
        return outcomes, rows

    def _settle(self, batch: list[Append], outcomes: list[Outcome]) -> None:
        """Hand each caller its outcome: one wake-up per event loop, not per record."""
        if len(batch) == 1:  # an idle log's batch: one caller, no grouping by loop
            _settle_one(batch[0], outcomes[0])
            return
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


class _Watched:
    """``GroupCommitLog._busy``, the writer's busy mark: a class, not ``@contextmanager``, whose
    generator machinery cost more than the write's own bookkeeping (twice per batch).
    Holds no state of its own (only the writer thread enters it), so one serves every write."""

    __slots__ = ("log",)

    def __init__(self, log: GroupCommitLog) -> None:
        self.log = log

    def __enter__(self) -> None:
        self.log._writes += 1
        self.log._busy_since = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.log._busy_since = None


_NO_TURN = nullcontext()  # GroupCommitLog._turn's default (reusable: it holds nothing)


def unavailable(exc: BaseException) -> AuditUnavailable:
    err = AuditUnavailable(f"decision log could not commit: {exc}")
    err.__cause__ = exc
    return err


def _resolve(future: asyncio.Future[_T] | concurrent.futures.Future[_T] | None,
             outcome: _T | BaseException) -> None:
    if future is None or future.done():  # part of a _Group; or the caller gave up (cancelled)
        return
    try:
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except (asyncio.InvalidStateError, concurrent.futures.InvalidStateError):
        pass  # cancelled between the check and the set


def _settle_one(item: Append, outcome: Outcome) -> None:
    """Hand one caller its outcome (on its own loop for ``append``)."""
    if item.loop is None:
        _resolve(item.future, outcome)
        return
    try:
        item.loop.call_soon_threadsafe(_resolve, item.future, outcome)
    except RuntimeError:  # that loop is closed: nobody is waiting any more
        pass


def _resolve_all(pairs: list[tuple[Any, Outcome]]) -> None:
    for future, outcome in pairs:
        _resolve(future, outcome)


__all__ = ["Append", "CommitHealth", "GroupCommitLog", "Outcome", "Row", "unavailable"]
