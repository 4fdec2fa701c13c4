"""Admin endpoints are authorized by the bundle's own policies, and every call is logged."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


def _events(components, event: str) -> list[dict]:
    return [r for r in components.log.tail(50) if r.get("event") == event]


async def test_reload_without_a_credential_is_401_and_the_refusal_is_logged(client, components) -> None:
    r = await client.post("/v1/policies/reload")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    body = r.json()
    assert body["reason_codes"] == ["identity.missing"]
    logged = components.log.get(body["decision_id"])
    assert logged["decision"] == "deny" and logged["pep"] == "admin-api"


async def test_reload_by_a_workload_without_a_permitting_policy_is_403(client, components, mint) -> None:
    token = mint("spiffe://example.org/services/etl")
    r = await client.post("/v1/policies/reload", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 403
    body = r.json()
    assert body["reason_codes"] == ["policy.no_permit"] and "no policy permits" in body["detail"]
    assert components.log.get(body["decision_id"])["action"] == 'Pdp::Action::"policy.reload"'


async def test_reload_by_a_policy_admin_is_recorded_as_an_admin_event(client, components, mint) -> None:
    token = mint("spiffe://example.org/ops/sre-console")
    r = await client.post("/v1/policies/reload", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["ok"] is True
    event = _events(components, "bundle.reload")[-1]
    assert event["kind"] == "admin"
    assert event["principal"] == "spiffe://example.org/ops/sre-console"
    authorizing = components.log.get(event["authorized_by"])
    assert authorizing["decision"] == "allow"
    assert authorizing["reasons"][0]["policy"] == "admin.policy-admins.policy"


async def test_a_stale_admin_credential_is_refused_by_the_freshness_forbid(client, components) -> None:
    from datetime import UTC, datetime, timedelta

    token = components.dev_issuer.mint("spiffe://example.org/ops/sre-console", ttl_s=900,
                                       now=datetime.now(UTC) - timedelta(minutes=6))
    r = await client.post("/v1/policies/reload", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 403
    assert r.json()["reason_codes"] == ["policy.forbid"]


async def test_the_initial_load_and_refused_reloads_are_in_the_chain(client, components, mint) -> None:
    assert _events(components, "bundle.load")[0]["detail"]["version"]["sha256"]
    (components.settings.policies / "broken.cedar").write_text("permit(")
    components.bundles.reload()  # as the file watcher does
    refused = _events(components, "bundle.reload_refused")[-1]
    assert refused["principal"] is None and refused["detail"]["problems"]
    assert components.log.verify().ok
