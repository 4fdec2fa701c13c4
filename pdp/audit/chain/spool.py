"""The spool: keep answering while the decision log's store is down, without losing a record.

Off by default: a store that cannot commit makes every decision a deny with
``audit.unavailable`` (fail closed). With ``[audit] spool_path`` set, a record
the store refuses with ``AuditUnavailable`` is appended to a local JSON Lines
file and fsynced **before** the decision is answered, so "acknowledged" still
means "durable" (in the spool instead of the store). A shipper thread retries
the store with exponential backoff and, once it is back, moves the spooled
records into it in spool order, each group in one transaction, then truncates
the spool. A non-empty spool found at start is shipped first.

While anything is spooled, new records go to the spool too, behind the
others, so the store receives records in the order they were decided.

**The chain.** A spooled record has no ``seq``/``prev_hash``/``hash`` yet: it
gets them when it reaches the store, chained after whatever the store holds
then. Its ``timestamp`` stays the time of the decision, so a shipped record
can have an older timestamp than the record before it in the chain.

Several processes (``pdp serve --workers``) may share one spool: writes and
truncation hold an exclusive ``flock`` on it, and each shipper looks at the
file every few seconds even when its own process spooled nothing.

Crash safety: a line is acknowledged only after its fsync, so a torn last line
(the process died mid-write) was never acknowledged and is cut off at the next
start. Shipping twice is harmless: appends are idempotent by ``decision_id``.
A record the store refuses for good (``DuplicateDecision``, malformed) is
moved to ``<spool>.rejected`` with the reason, never dropped silently.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pdp.audit.errors import AuditError, AuditUnavailable
from pdp.audit.records import prepare
from pdp.audit.store import DecisionStore

log = logging.getLogger(__name__)

SHIP_CHUNK = 256
"""Spooled records moved per transaction."""


class SpoolingLog:
    """A ``DecisionStore`` that spools to a local file while the wrapped ``store`` is down.

    Reads (``get``, ``query``, ...) go to the store; ``get`` also finds a
    record still waiting in the spool. Other attributes (checkpoints,
    retention) are the store's own.
    """

    def __init__(self, store: DecisionStore, spool_path: Path, *, retry_initial_s: float = 0.05,
                 retry_max_s: float = 5.0) -> None:
        self.store = store
        self.path = Path(spool_path)
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.spooled = 0  # records written to the spool by this process
        self.shipped = 0  # records moved from the spool into the store
        self.rejected = 0  # records the store refused for good
        self._lock = threading.Lock()  # spool writes, truncation and the mode switch
        self._sync_lock = threading.Lock()  # one fsync at a time; later writers ride along
        self._written = 0  # lines written so far (this process)
        self._synced = 0  # lines known to be on disk
        self._closed = False
        self._ship_lock = threading.Lock()  # one shipper at a time (thread or ship_now)
        self._offset = 0  # bytes of the spool already in the store
        self._stop = threading.Event()
        self._wake = threading.Event()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            with _flocked(self._fd):  # not while another process writes a line
                _cut_torn_tail(self._fd)
            self._spooling = os.fstat(self._fd).st_size > 0  # left from last time: ship first
        except OSError as exc:
            raise AuditUnavailable(f"cannot open the audit spool {self.path}: {exc}") from exc
        if self._spooling:
            log.warning("audit spool %s holds records from an earlier run: shipping them "
                        "before new records", self.path)
        self._thread = threading.Thread(target=self._ship_loop, name="pdp-audit-spool",
                                        daemon=True)
        self._thread.start()
        if self._spooling:
            self._wake.set()

    @property
    def spooling(self) -> bool:
        """True while records wait in the spool (new records then go there too)."""
        return self._spooling

    # -- appending --------------------------------------------------------------

    async def append(self, record: dict[str, Any]) -> dict[str, Any]:
        if self._closed:
            raise AuditUnavailable("decision log is closed")
        if not self._spooling:
            try:
                return await self.store.append(record)
            except AuditUnavailable as exc:
                log.warning("decision log unavailable, spooling: %s", exc)
        return await asyncio.to_thread(self._spool, record)

    def append_sync(self, record: dict[str, Any]) -> dict[str, Any]:
        if self._closed:
            raise AuditUnavailable("decision log is closed")
        if not self._spooling:
            try:
                return self.store.append_sync(record)
            except AuditUnavailable as exc:
                log.warning("decision log unavailable, spooling: %s", exc)
        return self._spool(record)

    def _spool(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append ``record`` to the spool and fsync; the record as spooled (no chain keys)."""
        prepared = prepare(record)  # the same checks as the store: ValueError for a bad record
        line = (prepared.body_json + "\n").encode()
        with self._lock, _flocked(self._fd):
            if self._closed:
                raise AuditUnavailable("decision log is closed")
            try:
                _write_all(self._fd, line)
            except OSError as exc:
                raise AuditUnavailable(f"cannot write the audit spool {self.path}: {exc}") from exc
            self._written += 1
            mine = self._written
            self._spooling = True
            self.spooled += 1
        self._sync(mine)
        self._wake.set()
        return dict(prepared.record)

    def _sync(self, line: int) -> None:
        """Make sure line number ``line`` is on disk (one fsync covers every line before it)."""
        with self._sync_lock:
            if self._synced >= line:
                return  # another writer's fsync covered it
            target = self._written
            try:
                os.fsync(self._fd)
            except OSError as exc:
                raise AuditUnavailable(f"cannot fsync the audit spool {self.path}: {exc}") from exc
            self._synced = target

    # -- shipping ---------------------------------------------------------------

    def ship_now(self) -> bool:
        """Try to move the spool into the store once; True when the spool is empty after.

        Raises ``AuditUnavailable`` while the store is still down.
        """
        with self._ship_lock:
            return self._ship()

    def _ship_loop(self) -> None:
        delay = self.retry_initial_s
        while not self._stop.is_set():
            self._wake.wait(delay if self._spooling else self.retry_max_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            if not self._spooling:
                try:  # another process sharing the spool may have left records in it
                    if os.fstat(self._fd).st_size == 0:
                        continue
                except OSError:
                    continue
                self._spooling = True
            try:
                with self._ship_lock:
                    done = self._ship()
            except AuditError as exc:
                log.info("audit spool: store still unavailable (%s); retrying in %.2fs",
                         exc, delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            except Exception:
                log.exception("audit spool: shipping failed")
                delay = min(delay * 2, self.retry_max_s)
                continue
            delay = self.retry_initial_s
            if not done:
                self._wake.set()  # more arrived meanwhile: go on at once

    def _ship(self) -> bool:
        """Ship every complete line; truncate when nothing new arrived. Raises AuditError."""
        if os.fstat(self._fd).st_size < self._offset:
            self._offset = 0  # another process shipped and truncated it
        offset = self._offset
        while True:
            chunk, end = _read_lines(self.path, offset, SHIP_CHUNK)
            if not chunk:
                break
            records: list[dict[str, Any]] = []
            for raw in chunk:
                try:
                    records.append(json.loads(raw))
                except ValueError as exc:
                    self._reject(raw.decode(errors="replace"), f"not JSON: {exc}")
            self._store_in_order(records)
            offset = self._offset = end
            if self._stop.is_set():
                return False
        with self._lock, _flocked(self._fd):
            size = os.fstat(self._fd).st_size
            if size != offset:
                if size < offset:
                    self._offset = 0  # truncated by another process meanwhile
                return False  # lines were added meanwhile: another round
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)
            self._offset = 0
            self._spooling = False
        if offset:
            log.warning("audit spool %s shipped to the decision log", self.path)
        return True

    def _store_in_order(self, records: list[dict[str, Any]]) -> None:
        many = getattr(self.store, "append_many_sync", None)
        if many is None:  # a store without groups (in memory): one at a time
            outcomes: list[Any] = []
            for record in records:
                try:
                    outcomes.append(self.store.append_sync(record))
                except AuditUnavailable:
                    raise
                except (AuditError, ValueError) as exc:
                    outcomes.append(exc)
        else:
            try:
                outcomes = many(records)
            except ValueError:  # one bad line: ship the others one by one
                outcomes = []
                for record in records:
                    try:
                        outcomes.extend(many([record]))
                    except ValueError as exc:
                        outcomes.append(exc)
        for outcome in outcomes:
            if isinstance(outcome, AuditUnavailable):
                raise outcome
        for record, outcome in zip(records, outcomes):
            if isinstance(outcome, BaseException):
                self._reject(json.dumps(record), str(outcome))
            else:
                self.shipped += 1

    def _reject(self, line: str, why: str) -> None:
        self.rejected += 1
        log.error("audit spool: the store refused a spooled record for good (%s); kept in "
                  "%s.rejected", why, self.path)
        with open(f"{self.path}.rejected", "a", encoding="utf-8") as f:
            f.write(json.dumps({"reason": why, "line": line}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    # -- reading and closing ------------------------------------------------------

    def get(self, decision_id: str) -> dict[str, Any] | None:
        try:
            found = self.store.get(decision_id)
        except AuditUnavailable:
            found = None
            if not self._spooling:
                raise
        if found is not None or not self._spooling:
            return found
        for record in self.pending():
            if record.get("decision_id") == decision_id:
                return record
        return None

    def pending(self) -> Iterator[dict[str, Any]]:
        """The records waiting in the spool, oldest first (no chain keys yet)."""
        offset = 0
        while True:
            chunk, offset = _read_lines(self.path, offset, SHIP_CHUNK)
            if not chunk:
                return
            for raw in chunk:
                try:
                    yield json.loads(raw)
                except ValueError:
                    continue

    def close(self) -> None:
        """Stop shipping (what is left stays spooled for the next start), close the store."""
        with self._lock:
            self._closed = True
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self.store.close()
        try:
            os.close(self._fd)
        except OSError:
            pass

    def __enter__(self) -> SpoolingLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        # tail, query, iter_all, verify, checkpoints, head, ...: the store's.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.store, name)


class _flocked:
    """An exclusive ``flock`` on the spool for as long as the block runs (other processes)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _cut_torn_tail(fd: int) -> None:
    """Drop an unfinished last line: it was never fsynced, so never acknowledged."""
    size = os.fstat(fd).st_size
    if size == 0:
        return
    keep = size
    step = 4096
    while keep > 0:
        start = max(0, keep - step)
        block = os.pread(fd, keep - start, start)
        if keep == size and block.endswith(b"\n"):
            return  # the common case: the file ends with a whole line
        at = block.rfind(b"\n")
        if at != -1:
            keep = start + at + 1
            break
        keep = start
    log.warning("audit spool: dropping an unfinished last line (%d bytes)", size - keep)
    os.ftruncate(fd, keep)
    os.fsync(fd)


def _read_lines(path: Path, offset: int, limit: int) -> tuple[list[bytes], int]:
    """Up to ``limit`` complete lines from byte ``offset``; and the offset after them."""
    lines: list[bytes] = []
    with open(path, "rb") as f:
        f.seek(offset)
        while len(lines) < limit:
            raw = f.readline()
            if not raw.endswith(b"\n"):
                break  # end of file, or a line still being written
            offset += len(raw)
            if raw.strip():
                lines.append(raw)
    return lines, offset


__all__ = ["SHIP_CHUNK", "SpoolingLog"]
