"""The Redis backend against a real, private redis-server: sharing, outage, recovery."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from context.calendar import BusinessCalendar
from context.live import Freshness, LiveContext
from context.redis_backend import RedisContextStore, RedisLink, RedisRevocationStore
from context.revocations import new_revocation
from context.state import RiskEntry, Scope
from context.store import ContextUnavailable
from tests.context.redis_server import RedisServer

pytestmark = pytest.mark.services

ETL = "spiffe://example.org/services/etl"


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


@pytest.fixture
def replicas(redis_server: RedisServer) -> Iterator[tuple[LiveContext, LiveContext]]:
    made = [LiveContext(store=RedisContextStore(RedisLink(redis_server.url, resync_s=0.1)),
                        calendar=BusinessCalendar(), freshness=Freshness(1.0, 1.0))
            for _ in range(2)]
    yield made[0], made[1]
    for live in made:
        live.close()


def _now() -> datetime:
    return datetime.now(UTC)


def test_a_change_through_one_replica_reaches_the_other(replicas) -> None:
    a, b = replicas
    incident, version = a.declare_incident(scope=Scope.parse("trust_domain:example.org"),
                                           level=2, reason="shared", now=_now())
    eventually(lambda: b.snapshot(ETL, _now()).incident)
    snap = b.snapshot(ETL, _now())
    assert snap.version == version and snap.incidents[0].id == incident.id
    assert snap.sources["incident"].source.startswith("redis://127.0.0.1:")
    a.clear_incidents(now=_now())
    eventually(lambda: not b.snapshot(ETL, _now()).incident)


def test_revocations_are_shared_and_checked_locally(redis_server: RedisServer, replicas) -> None:
    a, b = replicas
    ra, rb = RedisRevocationStore(a.store.link), RedisRevocationStore(b.store.link)
    entry = new_revocation("spiffe_id", ETL, reason="compromised")
    stored, created = ra.add(entry)
    assert created and ra.add(entry) == (stored, False)
    eventually(lambda: [e.id for e in rb.list()] == [entry.id])

    class Facts:
        principal_id, issuer, trust_domain = ETL, "spiffe://example.org", "example.org"
        jti = serial = actor = issued_at = not_before = None
        actor_chain: tuple[str, ...] = ()

    assert rb.check(Facts(), _now()) == stored
    version = rb.version
    assert ra.remove(entry.id) == stored and ra.remove(entry.id) is None
    eventually(lambda: rb.version > version and rb.check(Facts(), _now()) is None)


def test_an_outage_keeps_last_values_until_their_max_age_then_defaults_then_recovers(
        redis_server: RedisServer, replicas) -> None:
    a, b = replicas
    a.declare_incident(scope=Scope(), level=1, reason="before the outage", now=_now())
    eventually(lambda: b.snapshot(ETL, _now()).incident)
    redis_server.kill()
    eventually(lambda: b.health()["reachable"] is False)
    held = b.snapshot(ETL, _now())
    if held.degraded == ():  # within max age: the last known values, as they were
        assert held.incident and held.risk_level == 0
    with pytest.raises(ContextUnavailable):
        a.set_risk(level=3, reason="cannot be written", now=_now())
    eventually(lambda: b.snapshot(ETL, _now()).degraded != ())
    stale = b.snapshot(ETL, _now())
    assert stale.risk_level == 2 and stale.incident  # defaults, never below the last known
    assert "unreachable" in stale.notes[-1] and b.health()["status"] == "degraded"

    # An automatic raise during the outage is enforced here at once, written on recovery.
    a.raise_automatically(ETL, RiskEntry(level=3, reason="r", set_at=_now(), decay_s=600,
                                         automatic=True, evidence=("e",)))
    assert a.snapshot(ETL, _now()).principal_risk_level == 3
    redis_server.start()
    eventually(lambda: not b.snapshot(ETL, _now()).degraded)
    eventually(lambda: b.snapshot(ETL, _now()).principal_risk_level == 3)
    assert b.snapshot(ETL, _now()).incident  # kept by Redis's append-only file
    assert b.health()["status"] == "ok"


def test_the_machines_shared_redis_works_under_a_private_prefix() -> None:
    import secrets

    from tests.conftest import require_service

    require_service("Redis", "127.0.0.1", 6379)
    prefix = f"pdp-test-{secrets.token_hex(6)}"
    made = [LiveContext(store=RedisContextStore(RedisLink("redis://127.0.0.1:6379/0",
                                                           prefix=prefix, resync_s=0.1)),
                        calendar=BusinessCalendar()) for _ in range(2)]
    a, b = made
    try:
        _, version = a.set_risk(level=2, reason="shared instance", now=_now(), principal=ETL)
        eventually(lambda: b.snapshot(ETL, _now()).version == version)
        assert b.snapshot(ETL, _now()).principal_risk_level == 2
    finally:
        for live in made:
            live.close()
        import redis

        with redis.Redis(host="127.0.0.1", port=6379) as client:
            keys = list(client.scan_iter(match=f"{prefix}:*"))
            if keys:
                client.delete(*keys)


def test_an_unreachable_redis_at_start_is_degraded_not_a_crash(tmp_path) -> None:
    from tests.server import free_port

    live = LiveContext(store=RedisContextStore(RedisLink(f"redis://127.0.0.1:{free_port()}/0",
                                                         resync_s=0.1)),
                       calendar=BusinessCalendar())
    try:
        snap = live.snapshot(ETL, _now())
        assert snap.degraded and snap.risk_level == 2 and "never reached" in snap.notes[-1]
    finally:
        live.close()
