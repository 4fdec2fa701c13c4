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
        self.probes = 0
        self._start_writer()

    def _row(self, p: Any, seq: int, head: str, digest: str, text: str) -> Row:
        return (p.columns.decision_id,)

    def _write(self, batch: list[Append]) -> list[Outcome]:
        if self.hang.is_set():
            self.aborted.clear()
            self.aborted.wait()
            return [unavailable(ConnectionError("aborted")) for _ in batch]
        outcomes, _ = self._chain(batch, len(self.stored), GENESIS, None)
        self.stored.extend(o for o in outcomes if isinstance(o, dict))
        return outcomes

    def _abort_write(self) -> None:
        self.aborts += 1
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
    with pytest.raises(AuditUnavailable):
        store.append_sync(make_record())
    # The caller's bound started when it queued the record, the writer's clock a moment
    # later: the health turns within a watchdog tick of the caller giving up, not at once.
    assert _eventually(lambda: not store.commit_health().ok)
    assert store.commit_health().error
    store.hang.clear()
    assert _eventually(lambda: store.commit_health().ok), "the log did not find out by itself"
    assert store.probes >= 1 and store.stored == []

