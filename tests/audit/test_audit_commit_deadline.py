"""The group-commit writer's deadline, with a store whose writes hang until it is told to stop.

The real databases behind a stalling proxy are in tests/resilience/; here the machinery
itself: who gives up when, which records are withdrawn, what readiness says, how it recovers.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from pdp.audit.chain.groupcommit import Append, GroupCommitLog, Outcome, Row, unavailable
from pdp.audit.chain.hashchain import GENESIS
from pdp.audit.errors import AuditUnavailable
from tests.audit.conftest import MakeRecord

BOUND_S = 0.2


class HangingStore(GroupCommitLog):
    """Writes into a list; while ``hang`` is set a write blocks until the watchdog aborts it."""

    def __init__(self) -> None:
        super().__init__(batch_max=64, commit_timeout_s=BOUND_S)
        self.stored: list[dict[str, Any]] = []
        self.hang = threading.Event()
        self.aborted = threading.Event()
        self.aborts = 0
        self.abortable = True  # False: the watchdog cannot end a hanging write (only the bound)
        self.probes = 0
        self.hung = threading.Event()  # a write has blocked on ``hang``
        self._start_writer()

    def _row(self, p: Any, seq: int, head: str, digest: str, text: str) -> Row:
        return (p.columns.decision_id,)

    def _write(self, batch: list[Append]) -> list[Outcome]:
        if self.hang.is_set():
            self.aborted.clear()
            self.hung.set()
            self.aborted.wait()
            return [unavailable(ConnectionError("aborted")) for _ in batch]
        outcomes, _ = self._chain(batch, len(self.stored), GENESIS, None)
        self.stored.extend(o for o in outcomes if isinstance(o, dict))
        return outcomes

    def _abort_write(self) -> None:
        self.aborts += 1
        if self.abortable:
            self.aborted.set()

    def _probe(self) -> None:
        self.probes += 1
        if self.hang.is_set():
            raise ConnectionError("still hanging")


def _eventually(check, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def store():
    s = HangingStore()
    yield s
    s.hang.clear()
    s.aborted.set()
    s.close()


def test_a_hanging_write_is_refused_within_the_bound_and_queued_records_are_withdrawn(
        store: HangingStore, make_record: MakeRecord) -> None:
    kept = store.append_sync(make_record())
    store.hang.set()
    refused = [make_record() for _ in range(3)]

    async def three_at_once() -> list[BaseException | dict[str, Any]]:
        return await asyncio.gather(*(store.append(r) for r in refused), return_exceptions=True)

    outcomes = asyncio.run(three_at_once())
    assert all(isinstance(o, AuditUnavailable) for o in outcomes), outcomes
    assert store.aborted.wait(10)  # the watchdog ends the hanging write
    assert _eventually(lambda: not store.commit_health().ok)  # once the writer reports it
    store.hang.clear()
    after = store.append_sync(make_record())
    assert [r["decision_id"] for r in store.stored] == [kept["decision_id"], after["decision_id"]]
    assert store.commit_health().ok


def test_an_idle_log_probes_until_the_store_answers_again(
        store: HangingStore, make_record: MakeRecord) -> None:
    store.hang.set()
    # Until the writer has taken one (on a starved machine it may not take a record before
    # its caller's bound, and a record given up untaken is never written): each is refused.
    for _ in range(50):
        with pytest.raises(AuditUnavailable):
            store.append_sync(make_record())
        if store.hung.is_set():
            break
    assert store.hung.is_set(), "the writer never took a record"
    # The caller's bound started when it queued the record, the writer's clock a moment
    # later: the health turns within a watchdog tick of the caller giving up, not at once.
    assert _eventually(lambda: not store.commit_health().ok)
    assert store.commit_health().error
    store.hang.clear()
    assert _eventually(lambda: store.commit_health().ok), "the log did not find out by itself"
    assert store.probes >= 1 and store.stored == []



class SlowStore(HangingStore):
    """Its writes take ``write_s`` each and then commit, whatever the watchdog says: a
    COMMIT already on its way when the bound passes."""

    def __init__(self, write_s: float) -> None:
        super().__init__()
        self.write_s = write_s
        self.abortable = False

    def _write(self, batch: list[Append]) -> list[Outcome]:
        time.sleep(self.write_s)
        return super()._write(batch)


def test_a_caller_whose_record_is_being_written_gets_the_write_outcome_not_a_refusal(
        make_record: MakeRecord) -> None:
    """Past its bound, a caller whose record the writer had taken waits for the write:
    refusing it then would leave in the log an answer nobody was given."""
    store = SlowStore(write_s=BOUND_S * 1.5)
    try:
        synced = store.append_sync(make_record())  # raised AuditUnavailable before the fix

        async def one() -> dict[str, Any]:
            return await store.append(make_record())

        awaited = asyncio.run(one())
        assert [r["decision_id"] for r in store.stored] == [synced["decision_id"],
                                                            awaited["decision_id"]]
    finally:
        store.close()


def test_every_answer_says_what_the_log_holds_when_writes_straddle_the_bound(
        make_record: MakeRecord) -> None:
    """Writes that end just before or just after the callers' bound: every record answered
    as committed is stored, and every record refused is not."""
    store = SlowStore(write_s=BOUND_S * 1.2)

    async def waves() -> list[tuple[str, object]]:
        async def one(delay: float) -> tuple[str, object]:
            await asyncio.sleep(delay)
            record = make_record()
            try:
                return record["decision_id"], await store.append(record)
            except AuditUnavailable as e:
                return record["decision_id"], e
        return await asyncio.gather(*(one(i * BOUND_S / 7) for i in range(12)))

    try:
        answers = asyncio.run(waves())
    finally:
        store.close()
    stored = {r["decision_id"] for r in store.stored}
    committed = {d for d, outcome in answers if isinstance(outcome, dict)}
    refused = {d for d, outcome in answers if isinstance(outcome, AuditUnavailable)}
    assert committed | refused == {d for d, _ in answers}
    assert refused, "no record was refused: the scenario did not reach the bound"
    assert committed == stored


class ReconnectingStore(HangingStore):
    """Disconnected until :meth:`_ready_to_write` succeeds; that connect hangs while
    ``connect_hangs`` is set (until the watchdog aborts it)."""

    def __init__(self) -> None:
        self.connected = False
        self.connect_hangs = threading.Event()
        self.connects = 0
        super().__init__()

    def _must_connect(self) -> bool:
        return not self.connected

    def _ready_to_write(self) -> None:
        self.connects += 1
        if self.connect_hangs.is_set():
            self.aborted.clear()
            self.aborted.wait()
            raise ConnectionError("connect aborted")
        self.connected = True


def test_a_hanging_reconnect_is_watched_and_carries_no_record_its_caller_gave_up(
        make_record: MakeRecord) -> None:
    # The writer skips the connect step while the store says it is connected (the usual
    # batch); while it is not, the connect runs before the records are taken, under the
    # watchdog: a caller that gave up meanwhile is never written.
    store = ReconnectingStore()
    try:
        store.connect_hangs.set()
        with pytest.raises(AuditUnavailable):
            store.append_sync(make_record())
        assert store.aborted.wait(10)  # the watchdog ended the hanging connect
        store.connect_hangs.clear()
        kept = store.append_sync(make_record())
        assert [r["decision_id"] for r in store.stored] == [kept["decision_id"]]
        connects = store.connects
        store.append_sync(make_record())
        assert store.connects == connects  # connected: no connect step per batch
    finally:
        store.connect_hangs.clear()
        store.aborted.set()
        store.close()


# -- one timer per event loop for the bounds (pdp.audit.chain.deadlines) ----------------


def test_each_record_gets_its_own_full_bound_not_the_oldest_ones(
        store: HangingStore, make_record: MakeRecord) -> None:
    """Records appended later than the oldest waiting one expire at their own deadline:
    a sweep that expired everything waiting at the oldest's deadline fails this."""
    store.abortable = False  # the hanging write never ends: only the bound answers
    store.hang.set()

    async def staggered() -> list[tuple[float, float, object]]:
        loop = asyncio.get_running_loop()

        async def one(delay: float) -> tuple[float, float, object]:
            await asyncio.sleep(delay)
            appended = loop.time()
            try:
                outcome: object = await store.append(make_record())
            except AuditUnavailable as e:
                outcome = e
            return appended, loop.time(), outcome

        return await asyncio.gather(*(one(d) for d in (0.0, BOUND_S / 2, BOUND_S * 0.9)))

    for appended, answered, outcome in asyncio.run(staggered()):
        assert isinstance(outcome, AuditUnavailable), outcome
        assert answered - appended >= BOUND_S  # never before its own bound


def test_records_answered_first_do_not_keep_later_ones_from_their_bound(
        store: HangingStore, make_record: MakeRecord) -> None:
    """The oldest records commit (and one caller is cancelled); a later record, stuck,
    must still be refused: the timer goes on past records that need it no more."""
    store.abortable = False  # the hanging write never ends: only the bound answers

    async def scenario() -> tuple[list[dict[str, Any]], BaseException | None]:
        committed = [await store.append(make_record()) for _ in range(3)]
        store.hang.set()
        cancelled = asyncio.ensure_future(store.append(make_record()))
        await asyncio.sleep(0)
        cancelled.cancel()
        try:  # a generous guard, so that a record nobody refuses fails here, not hangs
            await asyncio.wait_for(store.append(make_record()), 30)
        except AuditUnavailable as e:
            return committed, e
        return committed, None

    committed, refused = asyncio.run(scenario())
    assert len(committed) == 3 and isinstance(refused, AuditUnavailable)
    assert [r["decision_id"] for r in store.stored] == [r["decision_id"] for r in committed]


def test_one_timer_per_loop_whatever_the_records_in_flight(
        store: HangingStore, make_record: MakeRecord) -> None:
    """Fifty records waiting on one loop schedule one timer, not fifty; all are refused,
    and once none waits the log forgets the loop."""
    store.abortable = False
    store.hang.set()
    scheduled: list[float] = []

    async def fifty() -> list[object]:
        loop = asyncio.get_running_loop()
        call_at = loop.call_at

        def counted(when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
            scheduled.append(when)
            return call_at(when, callback, *args, **kwargs)

        loop.call_at = counted  # type: ignore[method-assign]  # call_later goes through it
        waiting = asyncio.gather(*(store.append(make_record()) for _ in range(50)),
                                 return_exceptions=True)
        await asyncio.sleep(0)  # every append has queued its record and waits
        armed_while_all_wait = len(scheduled)
        outcomes = await waiting
        loop.call_at = call_at  # type: ignore[method-assign]
        return [armed_while_all_wait, *outcomes]

    armed, *outcomes = asyncio.run(fifty())
    assert all(isinstance(o, AuditUnavailable) for o in outcomes), outcomes
    # One timer while all fifty wait (re-armed later only for records still waiting).
    assert armed == 1, scheduled
    assert store._deadlines == {}


def test_records_waiting_on_two_loops_are_each_bounded(
        store: HangingStore, make_record: MakeRecord) -> None:
    """Two threads, each with its own event loop, append while the store hangs: each
    loop's timer refuses its own records."""
    store.abortable = False
    store.hang.set()
    results: dict[str, list[object]] = {}

    def worker(name: str) -> None:
        async def three() -> list[object]:
            return await asyncio.gather(*(store.append(make_record()) for _ in range(3)),
                                        return_exceptions=True)

        results[name] = asyncio.run(three())

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["a", "b"]
    assert all(isinstance(o, AuditUnavailable) for rs in results.values() for o in rs), results


def test_a_closed_log_leaves_no_thread_behind() -> None:
    # `pdp serve --workers N` closes a log and then forks: a watchdog still sleeping out its
    # tick would be alive at the fork (tests/cli/test_prepare_workers.py saw it, now and then).
    for _ in range(5):
        log = HangingStore()
        log.close()
        assert not log._thread.is_alive()
        assert not log._watchdog.is_alive()
