"""A Redis that stalls, resets or black-holes: decisions never wait for it, admin writes are
acknowledged once durable in the log's store (Redis only fans them out), and the replica
catches up by itself once Redis answers again.

A private redis-server (tests/context/redis_server.py) sits behind
:class:`tests.tcp_proxy.TcpProxy`; the app is the real one (ASGI transport) with
``[context] backend = "redis"``. Decisions read the local copy; only the sync thread and the
administrators' writes talk to Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pdp.components import Components, build_components
from pdp.config import load_settings
from tests.conftest import asgi_client
from tests.context.redis_server import RedisServer, require_redis_server
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.anyio, pytest.mark.services, pytest.mark.slow]

ETL = "spiffe://example.org/services/etl"
SRE = "spiffe://example.org/ops/sre-console"
REDIS_TIMEOUT_S = 0.3
GIVE_UP_S = 15.0


@pytest.fixture
def proxied_redis(tmp_path: Path) -> Iterator[TcpProxy]:
    server = RedisServer(require_redis_server(), tmp_path / "redis").start()
    try:
        with TcpProxy(("127.0.0.1", server.port)) as proxy:
            yield proxy
    finally:
        server.kill()


@pytest.fixture
def redis_components(tmp_path: Path, bundle_copy, proxied_redis: TcpProxy) -> Iterator[Components]:
    settings = load_settings(
        None, dev=True, policies=bundle_copy(), state_dir=tmp_path / "state",
        context={"backend": "redis", "redis_timeout_s": REDIS_TIMEOUT_S, "resync_s": 0.2,
                 "redis_url": f"redis://{proxied_redis.host}:{proxied_redis.port}/0",
                 "max_age": {"incident_s": 1.0, "risk_s": 1.0}})
    parts = build_components(settings)
    yield parts
    parts.close()


@pytest.fixture
async def client(redis_components: Components) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(redis_components) as c:
        yield c


def _token(components: Components, who: str) -> str:
    assert components.dev_issuer is not None
    return components.dev_issuer.mint(who)


async def _authorize(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    r = await asyncio.wait_for(client.post("/v1/authorize", json={
        "subject": {"token": token}, "action": "read",
        "resource": {"type": "App::Dataset", "id": "sales-daily"}}), GIVE_UP_S)
    assert r.status_code == 200, r.text
    return r.json()


async def _revoke(client: httpx.AsyncClient, admin: str, value: str) -> httpx.Response:
    return await asyncio.wait_for(client.post(
        "/v1/revocations", json={"kind": "spiffe_id", "value": value, "reason": "test"},
        headers={"authorization": f"Bearer {admin}"}), GIVE_UP_S)


async def _context(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await asyncio.wait_for(client.get("/readyz"), GIVE_UP_S)
    return r.json()["context"]


async def _until(probe, *, within: float = GIVE_UP_S) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not (result := await probe()):
        if loop.time() > deadline:
            pytest.fail(f"not reached within {within}s")
        await asyncio.sleep(0.1)
    return result


@pytest.mark.parametrize("mode", ["stall", "blackhole", "reset"])
async def test_redis_outage_never_holds_a_decision_and_admin_writes_are_durable_without_it(
        mode: str, client: httpx.AsyncClient, redis_components: Components,
        proxied_redis: TcpProxy) -> None:
    etl, admin = _token(redis_components, ETL), _token(redis_components, SRE)
    assert (await _authorize(client, etl))["decision"] == "allow"
    assert (await _context(client))["status"] == "ok"

    proxied_redis.mode = mode
    # An administrator's write waits on Redis (at most redis_timeout_s per call) while a
    # decision arrives: the decision is answered first, from the local copy.
    finished: list[str] = []

    async def revoke() -> httpx.Response:
        r = await _revoke(client, admin, "spiffe://example.org/services/other")
        finished.append("revoke")
        return r

    async def decide() -> dict[str, Any]:
        await asyncio.sleep(0.05)  # the revoke is waiting on Redis by now
        d = await _authorize(client, etl)
        finished.append("decision")
        return d

    revoked, decided = await asyncio.gather(revoke(), decide())
    if mode != "reset":  # a reset fails the write at once: nothing to wait for
        assert finished == ["decision", "revoke"]
    assert decided["decision"] == "allow"
    # Durable in the decision log's store before it is acknowledged; Redis only fans it out.
    assert revoked.status_code == 201, revoked.text

    async def degraded() -> bool:
        return (await _context(client))["status"] == "degraded"

    await _until(degraded)
    stale = await _authorize(client, etl)  # past max_age: conservative defaults, still answered
    assert stale["decision"] in ("allow", "deny")

    proxied_redis.mode = "pass"

    async def recovered() -> bool:
        return (await _context(client))["status"] == "ok"

    await _until(recovered)
    r = await _revoke(client, admin, ETL)
    assert r.status_code == 201, r.text
    denied = await _authorize(client, etl)
    assert denied["decision"] == "deny" and denied["reason_codes"] == ["identity.revoked"]
