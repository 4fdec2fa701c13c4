"""Records whose commit was answered are let go at the next append, not at the bound's sweep
(pdp.audit.chain.deadlines), and the bound itself is unchanged.

Kept until the sweep (2 s by default), every answered record's prepared body stayed
alive, and the cyclic collector walked them all again and again. The attacks: after
many committed appends on one loop, nothing answered is still held; and for any
interleaving of appends, answers and the clock (hypothesis, on a loop whose clock the
test drives), every record not answered by its own deadline is expired exactly at that
deadline, and none answered in time ever is, as a sweep-only bookkeeping would do.
"""

from __future__ import annotations

import asyncio
import heapq
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.audit.chain.deadlines import LoopDeadlines
from tests.audit.conftest import MakeRecord
from tests.audit.test_audit_commit_deadline import HangingStore

BOUND = 10.0


def test_committed_records_are_not_held_until_the_sweep(make_record: MakeRecord) -> None:
    store = HangingStore()
    try:
        async def many() -> int:
            for _ in range(300):
                await store.append(make_record())
            deadlines = store._deadlines[asyncio.get_running_loop()]
            return len(deadlines._waiting)

        held = asyncio.run(many())
    finally:
        store.close()
    # Only the last record can still be held (its answer came after its own append).
    assert held <= 1, held
    assert len(store.stored) == 300


@dataclass
class _Timer:
    when: float
    callback: Any
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class _Clock:
    """The two things LoopDeadlines asks of its loop, with a clock the test moves."""

    now: float = 0.0
    timers: list[tuple[float, int, _Timer]] = field(default_factory=list)
    _n: int = 0

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any) -> _Timer:
        timer = _Timer(when, callback)
        self._n += 1
        heapq.heappush(self.timers, (when, self._n, timer))
        return timer

    def advance(self, dt: float) -> None:
        until = self.now + dt
        while self.timers and self.timers[0][0] <= until:
            when, _, timer = heapq.heappop(self.timers)
            self.now = max(self.now, when)
            if not timer.cancelled:
                timer.callback()
        self.now = until


@dataclass
class _Settles:
    answered: bool = False

    def done(self) -> bool:
        return self.answered


@dataclass
class _Item:
    n: int
    deadline: float
    future: _Settles | None = field(default_factory=_Settles)


operations = st.lists(st.one_of(
    st.tuples(st.just("append"), st.booleans()),  # True: a record with no future (a group's)
    st.tuples(st.just("answer"), st.integers(0, 60)),
    st.tuples(st.just("advance"), st.floats(0, 2 * BOUND, allow_nan=False)),
), max_size=80)


@settings(max_examples=300, deadline=None)
@given(ops=operations)
def test_each_unanswered_record_expires_at_its_own_deadline_and_no_other(
        ops: list[tuple[str, Any]]) -> None:
    clock = _Clock()
    expired: dict[int, float] = {}
    items: list[_Item] = []
    answered_at: dict[int, float] = {}
    deadlines: LoopDeadlines[_Item] = LoopDeadlines(
        clock, BOUND, lambda item: expired.setdefault(item.n, clock.now),  # type: ignore[arg-type]
        lambda: None)
    for op, arg in ops:
        if op == "append":
            item = _Item(len(items), clock.now + BOUND, None if arg else _Settles())
            items.append(item)
            deadlines.watch(item)
            front = deadlines._waiting[0][1]
            assert front.future is not None and not front.future.done() or front is item
        elif op == "answer" and items:
            item = items[arg % len(items)]
            if item.future is not None and item.n not in expired and not item.future.answered:
                item.future.answered = True
                answered_at[item.n] = clock.now
        elif op == "advance":
            clock.advance(arg)
    clock.advance(2 * BOUND)  # every deadline passed
    for item in items:
        if item.future is None:  # answered by its group's future: never expired here
            assert item.n not in expired
        elif item.n in answered_at:
            assert item.n not in expired and answered_at[item.n] < item.deadline
        else:
            assert expired[item.n] == item.deadline, (item, expired)
