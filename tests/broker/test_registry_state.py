"""The broker's state under attack: a restart keeps tasks and their revocations, bad rows
in the durable store are skipped, a key file others can read is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pdp.broker.keys import BrokerKeyring, create_key_file
from pdp.components import build_components
from pdp.config import BrokerConfig, load_settings
from tests.broker.conftest import PLANNER, exchange, task_details
from tests.conftest import asgi_client

pytestmark = pytest.mark.anyio


async def _reasons(client, token: str) -> list[str]:
    return (await client.post("/v1/authorize", json={
        "subject": {"token": token}, "action": "read",
        "resource": {"type": "App::Dataset", "id": "sales-daily"}})).json()["reason_codes"]


async def test_a_restart_keeps_tasks_completions_and_the_revoked_credentials(
        tmp_path: Path, bundle_copy, clock):
    settings = load_settings(None, dev=True, policies=bundle_copy(), state_dir=tmp_path / "s")
    parts = build_components(settings, clock=clock)
    async with asgi_client(parts) as client:
        svid = parts.dev_issuer.mint(PLANNER, ttl_s=3600, now=clock.at)
        live = (await exchange(client, svid, details=task_details("T-live"))).json()
        dead = (await exchange(client, svid, details=task_details("T-dead"))).json()
        done = await client.post("/v1/tasks/T-dead/complete",
                                 headers={"authorization": f"Bearer {svid}"})
        assert done.status_code == 200
    # The lifespan closed the components: a new process on the same state directory.
    again = build_components(settings, clock=clock)
    async with asgi_client(again) as client:
        assert again.broker.tasks.get("T-live").live
        assert not again.broker.tasks.get("T-dead").live
        assert len(again.broker.tasks.credentials("T-dead")) == 1
        assert await _reasons(client, dead["access_token"]) == ["identity.revoked"]
        assert "identity.revoked" not in await _reasons(client, live["access_token"])
        r = await exchange(client, svid, details=task_details("T-dead", "reopen"))
        assert r.json()["reason_codes"] == ["broker.task_closed"]


async def test_malformed_rows_in_the_durable_store_are_skipped(components, client, svid):
    components.admin_state.write("tasks", {
        "task:bad": "not json", "cred:bad:1": '{"task_id": 1}', "other": "{}",
        "task:bytes": b"\xff\xfe{".decode("latin-1"), "task:shape": '{"id": 5}'})
    r = await exchange(client, svid(PLANNER), details=task_details("T-ok"))
    assert r.status_code == 200, r.text
    assert [t.id for t in components.broker.tasks.tasks()] == ["T-ok"]


def test_a_broker_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "broker.pem"
    create_key_file(key)
    os.chmod(key, 0o644)
    with pytest.raises(PermissionError):
        BrokerKeyring.load(BrokerConfig(key_file=key), state_dir=tmp_path, dev=False)


def test_outside_dev_without_a_key_file_there_is_no_broker(tmp_path: Path) -> None:
    assert BrokerKeyring.load(BrokerConfig(), state_dir=tmp_path, dev=False) is None
    assert BrokerKeyring.load(BrokerConfig(enabled=False), state_dir=tmp_path, dev=True) is None


async def test_without_a_broker_the_endpoints_say_so(tmp_path: Path, bundle_copy):
    from tests.identity.workloads import TrustDomain, app_client, settings_for

    parts = build_components(settings_for(tmp_path, TrustDomain("example.org"),
                                          policies=bundle_copy()))
    assert parts.broker is None
    async with app_client(parts) as client:
        r = await client.post("/v1/token", data={"grant_type": "x", "subject_token": "y",
                                                 "subject_token_type": "z"})
        assert r.status_code == 404
        assert (await client.get("/v1/broker/jwks.json")).status_code == 404
