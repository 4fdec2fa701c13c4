"""The pipe between a worker of ``pdp serve --workers N`` and its supervisor.

The supervisor owns reloads (:mod:`pdp.cli.workers`): a worker says when it serves
(:class:`Ready`), forwards ``POST /v1/policies/reload`` (:class:`ReloadRequest`) and
hears every outcome (:class:`OutcomeMessage`): a refused bundle must show in each
worker's ``/readyz`` and metrics, although none of them loaded it.

A worker must not outlive its supervisor (it would serve its bundle for good, with
nobody to replace it): it asks the kernel for SIGTERM when the supervisor dies
(``PR_SET_PDEATHSIG``, Linux) and checks its parent on every idle second besides
(other systems; a supervisor gone before the request took). SIGTERM drains the
worker's requests and closes its decision log, as a shutdown does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import os
import signal
import sys
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from multiprocessing.connection import Connection

from pdp.engine.bundle import BundleVersion
from pdp.engine.store import BundleStore, ReloadOutcome

ANSWER_TIMEOUT_S = 600.0
"""Longest a reload request waits for the supervisor: a load and a rollout of every worker."""
PARENT_CHECK_S = 1.0
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class Ready:
    """The worker serves, with this bundle version."""
    version: BundleVersion | None


@dataclass(frozen=True, slots=True)
class Draining:
    """The worker has stopped accepting connections (it was told to stop)."""


@dataclass(frozen=True, slots=True)
class ReloadRequest:
    id: int
    requested_by: str | None
    authorized_by: str | None


@dataclass(frozen=True, slots=True)
class OutcomeMessage:
    """A reload's outcome; ``request_id`` when it answers this worker's request."""
    outcome: ReloadOutcome
    request_id: int | None = None


class WorkerLink:
    """A worker's end of its pipe: requests out, outcomes in (a thread reads them)."""

    def __init__(self, conn: Connection, supervisor_pid: int) -> None:
        self._conn = conn
        self._supervisor = supervisor_pid
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._waiting: dict[int, Future[ReloadOutcome]] = {}
        self._store: BundleStore | None = None

    def die_with_supervisor(self) -> None:
        """SIGTERM this process when the supervisor dies (see the module docstring)."""
        if sys.platform == "linux":
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != self._supervisor:  # died before the kernel was asked
            os.kill(os.getpid(), signal.SIGTERM)

    def attach(self, store: BundleStore) -> None:
        """Route ``store``'s reloads to the supervisor and feed it the outcomes."""
        self._store = store
        store.delegate_reloads(self.reload)
        threading.Thread(target=self._read, name="pdp-supervisor-link", daemon=True).start()

    def ready(self) -> None:
        """Tell the supervisor this worker serves (its app is up and listening)."""
        current = self._store.current if self._store is not None else None
        self._send(Ready(current.version if current else None))

    def draining(self) -> None:
        """Tell the supervisor this worker accepts no more connections."""
        try:
            self._send(Draining())
        except OSError:  # the supervisor is gone: nobody to tell
            pass

    def reload(self, requested_by: str | None, authorized_by: str | None) -> ReloadOutcome:
        """Ask the supervisor to reload; its outcome (blocking: call it from a thread)."""
        request = ReloadRequest(next(self._ids), requested_by, authorized_by)
        answer: Future[ReloadOutcome] = Future()
        self._waiting[request.id] = answer
        try:
            self._send(request)
            return answer.result(timeout=ANSWER_TIMEOUT_S)
        except (OSError, FutureTimeout):
            return self._unanswered("the supervisor did not answer the reload request")
        finally:
            self._waiting.pop(request.id, None)

    def _unanswered(self, why: str) -> ReloadOutcome:
        current = self._store.current if self._store is not None else None
        return ReloadOutcome(ok=False, changed=False,
                             version=current.version.label if current else None,
                             problems=(why,))

    def _send(self, message: object) -> None:
        with self._send_lock:
            self._conn.send(message)

    def _read(self) -> None:
        while True:
            try:
                if not self._conn.poll(PARENT_CHECK_S):
                    if os.getppid() != self._supervisor:
                        break
                    continue
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            if isinstance(message, OutcomeMessage):
                self._take(message)
        self._supervisor_gone()

    def _take(self, message: OutcomeMessage) -> None:
        if self._store is not None:  # metrics, /readyz, the audit event: before the answer
            self._store.apply(message.outcome)
        answer = self._waiting.get(message.request_id) if message.request_id else None
        if answer is not None and not answer.done():
            answer.set_result(message.outcome)

    def _supervisor_gone(self) -> None:
        gone = self._unanswered("the supervisor is gone")
        for answer in list(self._waiting.values()):
            if not answer.done():
                answer.set_result(gone)
        os.kill(os.getpid(), signal.SIGTERM)  # drain and stop, as on a shutdown


__all__ = ["Draining", "OutcomeMessage", "Ready", "ReloadRequest", "WorkerLink"]
