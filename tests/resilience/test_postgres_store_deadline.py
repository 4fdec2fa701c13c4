"""The PostgreSQL store's commit deadline, below the app: what a caller that gave up leaves
behind (nothing), and the spool taking over during a stall without losing a record."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pdp.audit.chain.spool import SpoolingLog
from pdp.audit.errors import AuditUnavailable
from pdp.audit.postgres import PostgresDecisionLog
from tests.audit.conftest import MakeRecord, make_record  # noqa: F401 - a fixture
from tests.audit.pgschema import postgres_schema, require_postgres
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.services, pytest.mark.slow]

BOUND_S = 0.3
GIVE_UP_S = 15.0


@pytest.fixture
def proxied_pg() -> Iterator[tuple[str, str, TcpProxy]]:
    require_postgres()
    with postgres_schema("pdp_deadline") as dsn:
        info = conninfo_to_dict(dsn)
        with TcpProxy((str(info.get("host", "127.0.0.1")), int(info.get("port", 5432)))) as proxy:
            yield dsn, make_conninfo(dsn, host=proxy.host, port=str(proxy.port)), proxy


def _within(fn, *args):
    """``fn(*args)`` in a thread; fail (rather than hang) if it takes longer than GIVE_UP_S."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(fn, *args)
        try:
            return future.result(timeout=GIVE_UP_S)
        except concurrent.futures.TimeoutError:
            pytest.fail(f"{fn.__name__} still waiting after {GIVE_UP_S}s")


@pytest.mark.parametrize("mode", ["stall", "blackhole"])
def test_a_record_refused_for_time_is_never_stored_later(
        mode: str, proxied_pg, make_record: MakeRecord) -> None:
    direct, through_proxy, proxy = proxied_pg
    with PostgresDecisionLog(through_proxy, commit_timeout_s=BOUND_S) as log:
        first = log.append_sync(make_record())
        proxy.mode = mode
        late = [make_record() for _ in range(3)]
        for record in late:  # the first is in the stalled transaction, the others queued
            with pytest.raises(AuditUnavailable, match="commit"):
                _within(log.append_sync, record)
        assert not log.commit_health().ok
        proxy.mode = "pass"
        deadline = time.monotonic() + GIVE_UP_S
        while True:  # a reconnect begun during the outage may still be running out its timeout
            record = make_record()
            try:
                after = _within(log.append_sync, record)
                break
            except AuditUnavailable:
                late.append(record)
                assert time.monotonic() < deadline, "the log did not recover"
    with PostgresDecisionLog(direct) as reader:
        assert reader.get(first["decision_id"]) is not None
        assert reader.get(after["decision_id"]) is not None
        for record in late:
            assert reader.get(record["decision_id"]) is None
        assert after["seq"] == first["seq"] + 1  # nothing slipped in between
        assert reader.verify().ok


def test_with_a_spool_a_stall_is_answered_from_the_spool_and_nothing_is_lost(
        proxied_pg, make_record: MakeRecord, tmp_path: Path) -> None:
    direct, through_proxy, proxy = proxied_pg
    store = PostgresDecisionLog(through_proxy, commit_timeout_s=BOUND_S)
    acknowledged = []
    with SpoolingLog(store, tmp_path / "spool.jsonl", retry_max_s=0.2) as log:
        acknowledged.append(log.append_sync(make_record()))
        proxy.mode = "stall"
        for _ in range(3):
            acknowledged.append(_within(log.append_sync, make_record()))
        assert log.spooling
        proxy.mode = "pass"
        deadline = time.monotonic() + GIVE_UP_S
        while log.spooling and time.monotonic() < deadline:
            time.sleep(0.1)  # the shipper thread retries on its own
        assert not log.spooling
    with PostgresDecisionLog(direct) as reader:
        for record in acknowledged:
            assert reader.get(record["decision_id"]) is not None
        assert reader.verify().ok
