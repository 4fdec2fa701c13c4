"""The spool: decisions keep being answered (and stay durable) while the store is down.

The failure is real: another connection holds SQLite's write lock
(BEGIN IMMEDIATE) and the log's busy timeout is short, so its commits fail
with "database is locked" until the lock is released.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from pdp.audit import AuditUnavailable, MemoryDecisionLog, SqliteDecisionLog
from pdp.audit.chain.spool import SpoolingLog
from pdp.components import build_components
from pdp.config import load_settings
from pdp.decision.model import AuthorizeInput, ResourceRef
from pdp.identity.model import BearerToken

MakeRecord = Callable[..., dict[str, Any]]


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@contextmanager
def write_locked(path: Path) -> Iterator[sqlite3.Connection]:
    """Hold the SQLite file's write lock, as a long transaction in another process would."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        finally:
            conn.execute("ROLLBACK")


def store_at(tmp_path: Path) -> SqliteDecisionLog:
    return SqliteDecisionLog(tmp_path / "decisions.db", busy_timeout_ms=50)


def spool_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_records_are_spooled_while_the_store_is_locked_then_shipped_in_order(
        tmp_path: Path, make_record: MakeRecord) -> None:
    spool_path = tmp_path / "spool.jsonl"
    with SpoolingLog(store_at(tmp_path), spool_path, retry_initial_s=0.02) as log:
        first = log.append_sync(make_record())
        assert first["seq"] == 1 and not log.spooling
        with write_locked(log.store.path):
            spooled = [log.append_sync(make_record()) for _ in range(5)]
            assert log.spooling and all("seq" not in r for r in spooled)
            # Acknowledged means durable: every record is in the spool file already.
            assert [r["decision_id"] for r in spool_lines(spool_path)] == \
                [r["decision_id"] for r in spooled]
            assert log.get(spooled[2]["decision_id"])["decision_id"] == spooled[2]["decision_id"]
            assert len(log.tail(10)) == 1  # the store itself has only the first
        later = log.append_sync(make_record())  # after the lock: behind the spooled ones
        wait_for(lambda: not log.spooling)
        stored = list(log.iter_all())
        assert [r["decision_id"] for r in stored] == \
            [r["decision_id"] for r in [first, *spooled, later]]
        assert [r["seq"] for r in stored] == list(range(1, 8))
        assert log.verify().ok and log.shipped in (5, 6)  # `later` may have been spooled too
        assert spool_path.stat().st_size == 0  # truncated once shipped


def test_async_appends_spool_too(tmp_path: Path, make_record: MakeRecord) -> None:
    import asyncio

    with SpoolingLog(store_at(tmp_path), tmp_path / "spool.jsonl", retry_initial_s=0.02) as log:
        with write_locked(log.store.path):
            async def main() -> list[dict[str, Any]]:
                return await asyncio.gather(*(log.append(make_record()) for _ in range(20)))

            acknowledged = asyncio.run(main())
        wait_for(lambda: not log.spooling)
        assert {r["decision_id"] for r in log.iter_all()} == \
            {r["decision_id"] for r in acknowledged}
        assert log.verify().ok


def test_a_spool_left_by_a_previous_run_is_shipped_first(tmp_path: Path,
                                                         make_record: MakeRecord) -> None:
    spool_path = tmp_path / "spool.jsonl"
    log = SpoolingLog(store_at(tmp_path), spool_path, retry_initial_s=10)
    with write_locked(log.store.path):
        left = [log.append_sync(make_record()) for _ in range(3)]
        log.close()  # the store is still down: the records stay in the spool
    assert len(spool_lines(spool_path)) == 3
    with SpoolingLog(store_at(tmp_path), spool_path, retry_initial_s=0.02) as again:
        assert again.spooling  # found non-empty at start
        new = again.append_sync(make_record())  # queued behind the old spool
        wait_for(lambda: not again.spooling)
        assert [r["decision_id"] for r in again.iter_all()] == \
            [r["decision_id"] for r in [*left, new]]
        assert again.verify().ok


def test_a_torn_last_line_was_never_acknowledged_and_is_cut_off(
        tmp_path: Path, make_record: MakeRecord) -> None:
    spool_path = tmp_path / "spool.jsonl"
    whole = make_record()
    spool_path.write_text(json.dumps(whole) + "\n" + '{"decision_id": "torn", "timest')
    with SpoolingLog(store_at(tmp_path), spool_path, retry_initial_s=0.02) as log:
        after = log.append_sync(make_record())
        wait_for(lambda: not log.spooling)
        assert [r["decision_id"] for r in log.iter_all()] == [whole["decision_id"],
                                                             after["decision_id"]]


def test_a_record_the_store_refuses_for_good_is_set_aside_not_lost(
        tmp_path: Path, make_record: MakeRecord) -> None:
    spool_path = tmp_path / "spool.jsonl"
    store = store_at(tmp_path)
    taken = store.append_sync(make_record())
    clash = {**make_record(), "decision_id": taken["decision_id"]}  # same id, other content
    fine = make_record()
    spool_path.write_text(json.dumps(clash) + "\n" + json.dumps(fine) + "\n")
    with SpoolingLog(store, spool_path, retry_initial_s=0.02) as log:
        wait_for(lambda: not log.spooling)
        assert log.rejected == 1 and log.get(fine["decision_id"]) is not None
    rejected = [json.loads(x) for x in Path(f"{spool_path}.rejected").read_text().splitlines()]
    assert "already stored" in rejected[0]["reason"] and taken["decision_id"] in rejected[0]["line"]


class FlakyStore(MemoryDecisionLog):
    """An in-memory store that is down while ``down`` is set (no group appends)."""

    down = False

    def append_sync(self, record: dict[str, Any]) -> dict[str, Any]:
        if self.down:
            raise AuditUnavailable("down")
        return super().append_sync(record)

    async def append(self, record: dict[str, Any]) -> dict[str, Any]:
        return self.append_sync(record)


def test_a_store_without_group_appends_is_shipped_one_by_one(tmp_path: Path,
                                                             make_record: MakeRecord) -> None:
    store = FlakyStore()
    store.down = True
    with SpoolingLog(store, tmp_path / "spool.jsonl", retry_initial_s=0.01) as log:
        records = [log.append_sync(make_record()) for _ in range(4)]
        time.sleep(0.05)  # a few failed attempts
        assert log.spooling
        store.down = False
        wait_for(lambda: not log.spooling)
        assert [r["decision_id"] for r in store.iter_all()] == \
            [r["decision_id"] for r in records]


def test_an_unusable_spool_path_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "spool.jsonl").mkdir()
    store = MemoryDecisionLog()
    with pytest.raises(AuditUnavailable, match="spool"):
        SpoolingLog(store, tmp_path / "spool.jsonl")


# -- through the decision service ------------------------------------------------------

@pytest.fixture
def service_parts(tmp_path: Path, bundle_copy: Any, request: pytest.FixtureRequest) -> Any:
    spool = request.param
    settings = load_settings(None, dev=True, policies=bundle_copy(), state_dir=tmp_path / "s",
                             audit={"busy_timeout_ms": 50,
                                    "spool_path": str(tmp_path / "spool.jsonl") if spool else None})
    parts = build_components(settings)
    yield parts
    parts.close()


def ask(parts: Any) -> Any:
    assert parts.dev_issuer is not None
    token = parts.dev_issuer.mint("spiffe://example.org/services/etl")
    return parts.service.authorize_sync(AuthorizeInput(
        credential=BearerToken(token), action="read",
        resource=ResourceRef("App::Dataset", "sales-daily")))


@pytest.mark.parametrize("service_parts", [False], indirect=True)
def test_without_a_spool_a_locked_store_fails_closed(service_parts: Any) -> None:
    assert ask(service_parts).decision == "allow"
    with write_locked(service_parts.settings.sqlite_path):
        decision = ask(service_parts)
    assert decision.decision == "deny"
    assert [str(c) for c in decision.reason_codes] == ["audit.unavailable"]
    assert ask(service_parts).decision == "allow"  # and back once the store is


@pytest.mark.parametrize("service_parts", [True], indirect=True)
def test_with_a_spool_a_locked_store_still_answers_and_ships_later(service_parts: Any) -> None:
    with write_locked(service_parts.settings.sqlite_path):
        decisions = [ask(service_parts) for _ in range(3)]
    assert [d.decision for d in decisions] == ["allow"] * 3
    log = service_parts.log
    wait_for(lambda: not log.spooling)
    for d in decisions:
        record = log.get(d.decision_id)
        assert record is not None and isinstance(record["seq"], int)
    assert log.verify().ok
