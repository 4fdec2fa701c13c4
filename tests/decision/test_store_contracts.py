"""The contracts ``decision`` and ``context`` define for their stores (issue 15: no
package cycle), attacked with stores that are *not* ``pdp.audit``'s.

``pdp.decision.log`` and ``context.admin_store`` say what the decision service and
the durable admin state need; the audit stores meet them, and their
``AuditUnavailable`` is each consumer's "unavailable". A foreign store that raises
only the consumer's own error must be handled exactly the same: a deny with
``audit.unavailable``, a refused admin change that changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import pytest

from context.admin_store import (
    AdminSnapshot,
    AdminStateStore,
    AdminStateUnavailable,
    AdminWrite,
)
from context.clock import FixedClock
from context.durable import DurableState
from context.store import ContextUnavailable
from pdp.audit import MemoryDecisionLog, SqliteDecisionLog
from pdp.audit.errors import AuditUnavailable
from pdp.audit.memory.admin_state import MemoryAdminState
from pdp.audit.sqlite.admin_state import SqliteAdminState
from pdp.decision.log import DecisionLog, LogUnavailable
from pdp.decision.model import AuthorizeInput, DecisionError, ResourceRef
from pdp.decision.service import DecisionService
from pdp.engine import load_bundle
from pdp.engine.bundle import Bundle
from pdp.reasons import ReasonCode
from tests.conftest import MONDAY_10


class RefusingLog:
    """A decision log of no package of ours that cannot commit anything."""

    def __init__(self) -> None:
        self.attempts = 0

    async def append(self, record: dict[str, Any]) -> dict[str, Any]:
        self.attempts += 1
        raise LogUnavailable("disk full")

    def append_sync(self, record: dict[str, Any]) -> dict[str, Any]:
        self.attempts += 1
        raise LogUnavailable("disk full")


class OneBundle:
    def __init__(self, bundle: Bundle) -> None:
        self.current = bundle


def _service(bundle: Bundle, log: DecisionLog) -> DecisionService:
    return DecisionService(bundles=OneBundle(bundle), verifier=None,  # type: ignore[arg-type]
                           live=None, log=log, clock=FixedClock(MONDAY_10))  # type: ignore[arg-type]


REFUSED = AuthorizeInput(credential=None, action="read",
                         resource=ResourceRef(type="App::Dataset", id="x"),
                         refused=DecisionError(ReasonCode.REQUEST_NO_ROUTE, "no route"))


def test_the_audit_stores_meet_the_decision_log_contract(tmp_path: Path) -> None:
    sqlite = SqliteDecisionLog(tmp_path / "d.db")
    try:
        for store in (MemoryDecisionLog(), sqlite, RefusingLog()):
            assert isinstance(store, DecisionLog)
    finally:
        sqlite.close()
    assert not isinstance(object(), DecisionLog)  # the check can say no
    assert issubclass(AuditUnavailable, LogUnavailable)
    assert issubclass(AuditUnavailable, AdminStateUnavailable)


@pytest.mark.anyio
async def test_a_foreign_log_that_cannot_commit_turns_every_answer_into_a_deny(
        bundle_copy: Callable[[], Path]) -> None:
    log = RefusingLog()
    service = _service(load_bundle(bundle_copy()), log)
    decided = [await service.authorize(REFUSED), service.authorize_sync(REFUSED)]
    assert log.attempts == 2
    for decision in decided:
        assert decision.decision == "deny"
        assert decision.reason_codes[0] == ReasonCode.AUDIT_UNAVAILABLE
        assert "disk full" in decision.errors[0].message


class FlakyAdminStore:
    """An admin-state store of no package of ours: it works until ``down`` is set."""

    source, durable = "flaky", True

    def __init__(self) -> None:
        self.inner = MemoryAdminState()
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise AdminStateUnavailable("the flaky store is down")

    def load(self) -> AdminSnapshot:
        self._check()
        return self.inner.load()

    def version(self) -> tuple[str, int]:
        self._check()
        return self.inner.version()

    def write(self, topic: str, puts: Mapping[str, str] = {}, deletes: Collection[str] = (),
              *, only_new: bool = False) -> AdminWrite:
        self._check()
        return self.inner.write(topic, puts, deletes, only_new=only_new)

    def close(self) -> None:
        pass


def test_a_foreign_admin_store_going_down_refuses_changes_and_leaves_the_copy_as_it_was(
        tmp_path: Path) -> None:
    stores: list[AdminStateStore] = [MemoryAdminState(), SqliteAdminState(tmp_path / "a.db")]
    flaky = FlakyAdminStore()
    stores.append(flaky)
    for store in stores:  # the audit stores and the foreign one behave alike while up
        state = DurableState(store, max_age_s=60)
        state.write("context", {"incident:a": "{}"})
        assert state.snapshot.rows("context") == {"incident:a": "{}"}
        state.close()
    state = DurableState(flaky, max_age_s=60)
    before = state.snapshot
    flaky.down = True
    with pytest.raises(ContextUnavailable, match="flaky store is down"):
        state.write("context", {"incident:b": "{}"})
    assert state.snapshot == before  # nothing changed here
    state.refresh_quietly()  # a failed poll is logged, not raised, and remembered
    assert state.error is not None and "down" in state.error
    flaky.down = False
    state.refresh_quietly()
    assert state.error is None and state.snapshot.rows("context") == {"incident:a": "{}"}
