"""The commit bound of records waiting on an event loop: one timer per loop, not per record.

:meth:`pdp.audit.chain.groupcommit.GroupCommitLog.append` promises that no caller waits
longer than ``commit_timeout_s`` for its record's commit. A timer per record
(``loop.call_later``, cancelled when the commit comes first) kept that promise at the
price of a timer scheduled and cancelled per decision, and a loop heap holding one
entry per record in flight. Every record of a log gets the same bound, so records
appended on one loop reach their deadlines in the order they were appended:
:class:`LoopDeadlines` keeps them in that order and arms a single timer, for the
oldest record still waiting. When it fires, records already answered (committed,
refused, or their caller cancelled) are dropped, those past their deadline are
expired, and the timer is armed again for the next one, if any.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class _Settles(Protocol):
    def done(self) -> bool: ...


class Waiting(Protocol):
    """A record waiting for its commit: its caller's future says whether it still waits."""

    @property
    def future(self) -> _Settles | None: ...


T = TypeVar("T", bound=Waiting)


class LoopDeadlines(Generic[T]):
    """Records appended on one event loop, oldest first, and the one timer for them.

    Touched only from that loop's thread (:meth:`watch` by the appending coroutine,
    :meth:`_sweep` by the loop's timer), so it needs no lock.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, bound_s: float,
                 expire: Callable[[T], object], on_idle: Callable[[], object]) -> None:
        self._loop = loop
        self._bound_s = bound_s
        self._expire = expire  # answers the caller AuditUnavailable, withdraws the record
        self._on_idle = on_idle  # nothing waits any more: the owner may forget this loop
        self._waiting: deque[tuple[float, T]] = deque()  # (deadline, record), oldest first
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, item: T) -> None:
        """Expire ``item`` at ``bound_s`` from now unless it was answered by then.

        Records answered at the front are let go first: a commit answers its records
        within milliseconds, and a record kept here until the timer's sweep (the bound,
        2 s by default) kept its whole prepared body alive: at 64 connections some
        4,000 records per worker, ~17 containers each, which every run of the
        cyclic collector walked again (about a tenth of the loop thread's CPU).
        """
        waiting = self._waiting
        while waiting and _answered(waiting[0][1]):
            waiting.popleft()
        waiting.append((self._loop.time() + self._bound_s, item))
        if self._timer is None:
            self._timer = self._loop.call_at(waiting[0][0], self._sweep)

    def _sweep(self) -> None:
        self._timer = None
        now = self._loop.time()
        waiting = self._waiting
        while waiting:
            deadline, item = waiting[0]
            if _answered(item):
                waiting.popleft()
            elif deadline <= now:
                waiting.popleft()
                self._expire(item)
            else:
                break
        if waiting:
            self._timer = self._loop.call_at(waiting[0][0], self._sweep)
        else:
            self._on_idle()


def _answered(item: Waiting) -> bool:
    future = item.future
    return future is None or future.done()


__all__ = ["LoopDeadlines", "Waiting"]
