"""Task grants through the admin API: they work, expire on time, and are in the log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from context.clock import FixedClock
from pdp.components import build_components
from pdp.config import load_settings
from tests.conftest import MONDAY_10, asgi_client

pytestmark = pytest.mark.anyio


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(MONDAY_10)


@pytest.fixture
async def setup(tmp_path: Path, bundle_copy, clock) -> Iterator[tuple]:
    settings = load_settings(None, dev=True, policies=bundle_copy(), state_dir=tmp_path / "s")
    parts = build_components(settings, clock=clock)
    async with asgi_client(parts) as client:
        yield parts, client


def _token(parts, spiffe_id: str, clock: FixedClock) -> str:
    return parts.dev_issuer.mint(spiffe_id, ttl_s=3600, now=clock.at)


async def _read_ledger(client, parts, clock) -> dict:
    return (await client.post("/v1/authorize", json={
        "subject": {"token": _token(parts, "spiffe://example.org/agents/reporter", clock)},
        "action": "read", "resource": {"type": "App::Dataset", "id": "ledger"}})).json()


async def _grant(client, parts, clock, **overrides) -> httpx.Response:
    admin = _token(parts, "spiffe://example.org/ops/sre-console", clock)
    return await client.post("/v1/grants", headers={"authorization": f"Bearer {admin}"}, json={
        "template": "grant.dataset.read", "principal": "spiffe://example.org/agents/reporter",
        "resource": {"type": "App::Dataset", "id": "ledger"}, "ttl_s": 900, "task": "T-123",
        **overrides})


async def test_a_grant_allows_until_it_expires_and_both_are_in_the_log(setup, clock) -> None:
    parts, client = setup
    assert (await _read_ledger(client, parts, clock))["decision"] == "deny"

    r = await _grant(client, parts, clock)
    assert r.status_code == 201
    grant = r.json()

    allowed = await _read_ledger(client, parts, clock)
    assert allowed["decision"] == "allow"
    assert allowed["reasons"][0]["policy"] == f"grant:{grant['id']}"
    assert "task 'T-123'" in allowed["explanation"]

    clock.at = MONDAY_10 + timedelta(minutes=14, seconds=59)
    assert (await _read_ledger(client, parts, clock))["decision"] == "allow"
    clock.at = MONDAY_10 + timedelta(minutes=15)
    expired = await _read_ledger(client, parts, clock)
    assert expired["decision"] == "deny" and expired["reason_codes"] == ["policy.no_permit"]

    records = parts.log.tail(20)
    event = next(r for r in records if r.get("event") == "policy.grant")
    assert event["detail"]["id"] == grant["id"] and event["detail"]["task"] == "T-123"
    assert parts.log.get(allowed["decision_id"])["reasons"][0]["policy"] == f"grant:{grant['id']}"
    assert parts.log.get(expired["decision_id"])["decision"] == "deny"


async def test_an_allow_from_a_grant_is_cached_no_longer_than_the_grant(setup, clock) -> None:
    parts, client = setup
    grant = (await _grant(client, parts, clock, ttl_s=60)).json()
    allowed = await _read_ledger(client, parts, clock)
    assert allowed["valid_until"] == grant["expires_at"]


async def test_a_revoked_grant_stops_at_once_and_the_revocation_is_logged(setup, clock) -> None:
    parts, client = setup
    grant = (await _grant(client, parts, clock)).json()
    admin = _token(parts, "spiffe://example.org/ops/sre-console", clock)
    r = await client.delete(f"/v1/grants/{grant['id']}", headers={"authorization": f"Bearer {admin}"})
    assert r.status_code == 200 and r.json()["revoked_at"]
    assert (await _read_ledger(client, parts, clock))["decision"] == "deny"
    assert any(r.get("event") == "policy.ungrant" for r in parts.log.tail(10))
    listing = (await client.get("/v1/grants?include_inactive=true",
                                headers={"authorization": f"Bearer {admin}"})).json()["grants"]
    assert listing[0]["active"] is False


async def test_grants_are_authorized_by_the_bundle(setup, clock) -> None:
    parts, client = setup
    agent = _token(parts, "spiffe://example.org/agents/reporter", clock)
    r = await client.post("/v1/grants", headers={"authorization": f"Bearer {agent}"}, json={
        "template": "grant.dataset.read", "principal": "spiffe://example.org/agents/reporter",
        "resource": {"type": "App::Dataset", "id": "ledger"}, "ttl_s": 900, "task": "self"})
    assert r.status_code == 403
    assert parts.log.get(r.json()["decision_id"])["decision"] == "deny"


async def test_a_grant_needs_a_known_template(setup, clock) -> None:
    parts, client = setup
    r = await _grant(client, parts, clock, template="dataset.analytics.read")
    assert r.status_code == 422 and "no template" in r.json()["detail"]


async def test_grants_survive_a_restart(setup, clock, tmp_path) -> None:
    parts, client = setup
    grant = (await _grant(client, parts, clock)).json()
    from context.durable import DurableState
    from context.grants import GrantStore
    from pdp.audit.factory import open_admin_state

    # Another process opening the same decision log's store finds the grant.
    reloaded = GrantStore(durable=DurableState(open_admin_state(parts.settings)))
    assert [g.id for g in reloaded.active(clock.at)] == [grant["id"]]


async def test_a_decision_allowed_by_a_grant_replays_from_its_record(setup, clock) -> None:
    from pdp.authoring.replay import replay_record

    parts, client = setup
    grant = (await _grant(client, parts, clock)).json()
    allowed = await _read_ledger(client, parts, clock)
    record = parts.log.get(allowed["decision_id"])
    assert [g["id"] for g in record["grants"]] == [grant["id"]]
    report = replay_record(record, archive=parts.archive, current=parts.bundles.current)
    assert report.reproduced
