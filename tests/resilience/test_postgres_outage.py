"""A PostgreSQL that stalls, resets or black-holes: decisions deny within the bound, /readyz
says not ready, and everything recovers by itself once the network does.

The real server sits behind :class:`tests.tcp_proxy.TcpProxy`, switched at run time; the app
is the real one (ASGI transport) with the decision log in a PostgreSQL schema of its own.
Every request runs under an outer ``asyncio.wait_for`` far above the bound, so the code
before bounded waits (which hung) fails here instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pdp.audit.errors import AuditUnavailable
from pdp.audit.postgres import PostgresDecisionLog
from pdp.audit.postgres.admin_state import PostgresAdminState
from pdp.components import Components, build_components
from pdp.config import load_settings
from tests.audit.pgschema import postgres_schema, require_postgres
from tests.conftest import asgi_client
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.anyio, pytest.mark.services, pytest.mark.slow]

BOUND_S = 0.5  # [audit] commit_timeout_s for these tests: short, so they stay quick
GIVE_UP_S = 15.0  # "it hangs": far above the bound and any reconnect


@pytest.fixture
def proxied_pg() -> Iterator[tuple[str, str, TcpProxy]]:
    """(direct DSN, DSN through the proxy, the proxy) for a fresh schema."""
    require_postgres()
    with postgres_schema("pdp_stall") as dsn:
        info = conninfo_to_dict(dsn)
        with TcpProxy((str(info.get("host", "127.0.0.1")), int(info.get("port", 5432)))) as proxy:
            yield dsn, make_conninfo(dsn, host=proxy.host, port=str(proxy.port)), proxy


@pytest.fixture
def pg_components(tmp_path: Path, bundle_copy, proxied_pg) -> Iterator[Components]:
    _, through_proxy, _ = proxied_pg
    settings = load_settings(None, dev=True, policies=bundle_copy(), state_dir=tmp_path / "state",
                             audit={"backend": "postgres", "postgres_dsn": through_proxy,
                                    "commit_timeout_s": BOUND_S})
    parts = build_components(settings)
    yield parts
    parts.close()


@pytest.fixture
async def pg_client(pg_components: Components) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(pg_components) as c:
        yield c


@pytest.fixture
def mint(pg_components: Components):
    assert pg_components.dev_issuer is not None
    return lambda who="spiffe://example.org/services/etl": pg_components.dev_issuer.mint(who)


async def _authorize(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    r = await asyncio.wait_for(client.post("/v1/authorize", json={
        "subject": {"token": token}, "action": "read",
        "resource": {"type": "App::Dataset", "id": "sales-daily"}}), GIVE_UP_S)
    assert r.status_code == 200, r.text
    return r.json()


async def _ready(client: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    r = await asyncio.wait_for(client.get("/readyz"), GIVE_UP_S)
    return r.status_code, r.json()


async def _until(probe, *, within: float = GIVE_UP_S) -> Any:
    """Poll ``probe`` (async, truthy when done) until it is; fail after ``within`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = await probe()
        if result:
            return result
        if loop.time() > deadline:
            pytest.fail(f"not reached within {within}s")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("mode", ["stall", "blackhole", "reset"])
async def test_postgres_outage_denies_within_the_bound_then_recovers_by_itself(
        mode: str, pg_client: httpx.AsyncClient, pg_components: Components, proxied_pg,
        mint) -> None:
    direct, _, proxy = proxied_pg
    token = mint()
    acknowledged = [await _authorize(pg_client, token) for _ in range(3)]
    assert {d["decision"] for d in acknowledged} == {"allow"}
    assert (await _ready(pg_client))[0] == 200

    proxy.mode = mode
    during = await asyncio.gather(*(_authorize(pg_client, token) for _ in range(4)))
    for d in during:
        assert d["decision"] == "deny"
        assert d["reason_codes"] == ["audit.unavailable"]
    status, body = await _ready(pg_client)
    assert status == 503 and body["status"] == "unavailable"
    assert body["audit"]["status"] == "unavailable" and body["audit"]["error"]

    proxy.mode = "pass"

    async def allowed_again() -> dict[str, Any] | None:
        d = await _authorize(pg_client, token)
        return d if d["decision"] == "allow" else None

    acknowledged.append(await _until(allowed_again))
    acknowledged.append(await _authorize(pg_client, token))
    status, body = await _until(lambda: _ready_ok(pg_client))
    assert body["audit"]["status"] == "ok"

    # Read through a connection of our own: every acknowledged decision is there, in one chain.
    with PostgresDecisionLog(direct) as reader:
        for d in acknowledged:
            assert reader.get(d["decision_id"]) is not None, d["decision_id"]
        for d in during:  # the denies said "not recorded": they are not
            assert reader.get(d["decision_id"]) is None
        report = reader.verify()
        assert report.ok, report


async def _ready_ok(client: httpx.AsyncClient) -> tuple[int, dict[str, Any]] | None:
    status, body = await _ready(client)
    return (status, body) if status == 200 else None


async def test_idle_log_becomes_ready_again_without_traffic(
        pg_client: httpx.AsyncClient, proxied_pg, mint) -> None:
    """A load balancer sends nothing to a replica that is not ready: the log must find out
    by itself that the database is back."""
    _, _, proxy = proxied_pg
    token = mint()
    proxy.mode = "stall"
    assert (await _authorize(pg_client, token))["reason_codes"] == ["audit.unavailable"]
    assert (await _ready(pg_client))[0] == 503
    proxy.mode = "pass"
    await _until(lambda: _ready_ok(pg_client))  # no decision asked in between
    assert (await _authorize(pg_client, token))["decision"] == "allow"


async def test_commit_pending_past_the_bound_is_not_ready_before_any_answer(
        pg_client: httpx.AsyncClient, pg_components: Components, proxied_pg, mint) -> None:
    _, _, proxy = proxied_pg
    proxy.mode = "stall"
    pending = asyncio.ensure_future(_authorize(pg_client, mint()))
    await _until(lambda: _not_ready(pg_client))
    assert (await pending)["reason_codes"] == ["audit.unavailable"]
    proxy.mode = "pass"
    await _until(lambda: _ready_ok(pg_client))


async def _not_ready(client: httpx.AsyncClient) -> bool:
    return (await _ready(client))[0] == 503


async def test_with_a_spool_a_stalled_postgres_keeps_answering_and_loses_nothing(
        tmp_path: Path, bundle_copy, proxied_pg) -> None:
    """The spool's promise holds under a hang too: answered means durable (in the spool), the
    replica says `degraded` rather than not ready, and the spool reaches PostgreSQL after."""
    direct, through_proxy, proxy = proxied_pg
    settings = load_settings(None, dev=True, policies=bundle_copy(), state_dir=tmp_path / "state",
                             audit={"backend": "postgres", "postgres_dsn": through_proxy,
                                    "commit_timeout_s": BOUND_S,
                                    "spool_path": str(tmp_path / "spool.jsonl")})
    parts = build_components(settings)
    try:
        assert parts.dev_issuer is not None
        token = parts.dev_issuer.mint("spiffe://example.org/services/etl")
        async with asgi_client(parts) as client:
            acknowledged = [await _authorize(client, token)]
            proxy.mode = "stall"
            acknowledged += [await _authorize(client, token) for _ in range(3)]
            assert {d["decision"] for d in acknowledged} == {"allow"}
            status, body = await _ready(client)
            assert status == 200 and body["status"] == "degraded"
            assert body["audit"]["status"] == "unavailable" and body["audit"]["spool"]
            proxy.mode = "pass"

            async def shipped() -> bool:
                return not parts.log.spooling  # type: ignore[attr-defined]

            await _until(shipped)
    finally:
        parts.close()
    with PostgresDecisionLog(direct) as reader:
        for d in acknowledged:
            assert reader.get(d["decision_id"]) is not None, d["decision_id"]
        assert reader.verify().ok


def _fails_within_the_bound(call: Callable[[], object]) -> None:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            outcome.append(exc)

    caller = threading.Thread(target=run, daemon=True)
    caller.start()
    caller.join(GIVE_UP_S)
    assert not caller.is_alive(), "the call hung past its bound"
    assert isinstance(outcome[0], AuditUnavailable), outcome


@pytest.mark.parametrize("mode", ["stall", "blackhole"])
def test_a_read_swallowed_by_the_network_fails_within_its_bound_and_the_next_one_works(
        mode: str, proxied_pg) -> None:
    """A read sent while the peer swallows it is never answered, even once the network is
    back: without a bound it held the read lock for good (every later read, the checkpoints
    and a clean shutdown waited behind it)."""
    _, through_proxy, proxy = proxied_pg
    # Closed only when the test passes: a hung call holds the lock closing would wait for.
    log = PostgresDecisionLog(through_proxy, commit_timeout_s=BOUND_S, read_timeout_s=1.0)
    assert log.head()[0] == 0
    proxy.mode = mode
    _fails_within_the_bound(log.head)
    proxy.mode = "pass"
    assert log.head()[0] == 0  # reconnected
    log.close()


@pytest.mark.parametrize("mode", ["stall", "blackhole"])
def test_the_admin_states_poll_swallowed_by_the_network_fails_and_the_next_one_works(
        mode: str, proxied_pg) -> None:
    """The replica's poll of the shared admin state (revocations, incidents made on other
    replicas) must not wait forever on a connection that swallowed it: this replica would
    never learn of a later revocation."""
    _, through_proxy, proxy = proxied_pg
    state = PostgresAdminState(through_proxy)  # closed as the log above
    state.call_timeout_s = 1.0
    before = state.version()
    proxy.mode = mode
    _fails_within_the_bound(state.version)
    proxy.mode = "pass"
    assert state.version() == before  # reconnected
    state.close()
