"""The context admin API, authorized by the bundle's own policies, and adaptive risk.

An app wired from real parts (dev issuer, SQLite log, the example bundle) with
a clock the tests move, driven over ASGI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from pdp.components import Components, build_components
from pdp.config import load_settings

pytestmark = pytest.mark.anyio

SRE = "spiffe://example.org/ops/sre-console"
ETL = "spiffe://example.org/services/etl"
AGENT = "spiffe://example.org/agents/reporter"
ADMIN_CONSOLE = "spiffe://example.org/services/admin-console"


@pytest.fixture
def components(tmp_path: Path, bundle_copy, clock) -> Iterator[Components]:
    settings = load_settings(
        None, dev=True, policies=bundle_copy(), state_dir=tmp_path / "state",
        watch_policies=False,
        context={"behaviour": {"deny_burst": 10, "window_s": 60, "decay_s": 120}})
    parts = build_components(settings, clock=clock)
    yield parts
    parts.close()



@pytest.fixture
def bearer(components: Components, clock):
    def make(spiffe_id: str = SRE) -> dict[str, str]:
        token = components.dev_issuer.mint(spiffe_id, now=clock.now(), ttl_s=240)
        return {"authorization": f"Bearer {token}"}
    return make


async def _decide(client: httpx.AsyncClient, bearer, who: str, action: str,
                  dataset: str) -> dict[str, Any]:
    token = bearer(who)["authorization"].split()[1]
    r = await client.post("/v1/authorize", json={
        "subject": {"token": token}, "action": action,
        "resource": {"type": "App::Dataset", "id": dataset}})
    assert r.status_code == 200
    return r.json()


def _events(components: Components, event: str) -> list[dict[str, Any]]:
    return [r for r in components.log.tail(500) if r.get("event") == event]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_context_admin_without_a_credential_is_401_and_the_refusal_is_logged(
        client, components) -> None:
    r = await client.post("/v1/context/incidents", json={"reason": "x"})
    assert r.status_code == 401 and r.json()["reason_codes"] == ["identity.missing"]
    logged = components.log.get(r.json()["decision_id"])
    assert logged["decision"] == "deny" and logged["pep"] == "admin-api"
    assert logged["action"] == 'Pdp::Action::"context.incident.set"'
    assert (await client.get("/v1/context")).status_code == 401


async def test_context_admin_without_a_permitting_policy_is_403_and_the_refusal_is_logged(
        client, components, bearer) -> None:
    r = await client.put("/v1/context/risk", json={"level": "critical", "reason": "x"},
                         headers=bearer(ETL))
    assert r.status_code == 403 and r.json()["reason_codes"] == ["policy.no_permit"]
    assert components.log.get(r.json()["decision_id"])["action"] == \
        'Pdp::Action::"context.risk.set"'
    assert components.live.snapshot(ETL, components.clock.now()).risk_level == 0
    assert _events(components, "context.risk.set") == []


async def test_an_incident_declared_by_sre_is_enforced_explained_logged_and_ended(
        client, components, bearer, clock) -> None:
    before = await _decide(client, bearer, ETL, "read", "customer-pii")
    assert before["decision"] == "allow"
    r = await client.post("/v1/context/incidents", headers=bearer(), json={
        "scope": "resource_tag:pii", "level": "critical", "reason": "exfiltration suspected",
        "id": "INC-7", "duration_s": 600})
    assert r.status_code == 201, r.text
    incident, version = r.json()["incident"], r.json()["version"]
    assert incident["set_by"] == SRE and version != before["context"]["version"]

    d = await _decide(client, bearer, ETL, "read", "customer-pii")
    assert d["decision"] == "deny"
    assert d["reasons"][0]["policy"] == "guard.incident.critical-lockdown"
    assert "critical incident INC-7 for resource_tag:pii: exfiltration suspected" in d["explanation"]
    assert d["context"]["version"] == version and d["context"]["incident_level"] == 3
    assert _at(d["valid_until"]) <= _at(incident["ends_at"])
    assert (await _decide(client, bearer, ETL, "read", "sales-daily"))["decision"] == "allow"

    event = _events(components, "context.incident.set")[-1]
    assert event["principal"] == SRE and event["detail"]["incident"]["id"] == "INC-7"
    authorizing = components.log.get(event["authorized_by"])
    assert authorizing["reasons"][0]["policy"] == "admin.sre.context-and-revocations"

    r = await client.delete("/v1/context/incidents/INC-7", headers=bearer())
    assert r.status_code == 200 and [i["id"] for i in r.json()["cleared"]] == ["INC-7"]
    assert _events(components, "context.incident.clear")[-1]["detail"]["incidents"][0]["id"] == "INC-7"
    assert (await _decide(client, bearer, ETL, "read", "customer-pii"))["decision"] == "allow"
    assert (await client.delete("/v1/context/incidents/INC-7", headers=bearer())).status_code == 404
    assert components.log.verify().ok


async def test_global_and_per_principal_risk_gate_elevated_actions(client, components,
                                                                   bearer) -> None:
    r = await client.put("/v1/context/risk", headers=bearer(),
                         json={"level": "high", "reason": "campaign", "ttl_s": 300})
    assert r.status_code == 200 and r.json()["risk"]["level"] == 2
    d = await _decide(client, bearer, ADMIN_CONSOLE, "delete", "ledger")
    assert d["decision"] == "deny" and d["reasons"][0]["policy"] == "guard.risk.elevated"
    assert d["context"]["global_risk_level"] == 2
    await client.put("/v1/context/risk", headers=bearer(), json={"level": 0, "reason": "calm"})
    assert (await _decide(client, bearer, ADMIN_CONSOLE, "delete", "ledger"))["decision"] == "allow"

    r = await client.put("/v1/context/risk", headers=bearer(), json={
        "principal": ETL, "level": "critical", "reason": "investigating"})
    assert r.status_code == 200
    d = await _decide(client, bearer, ETL, "write", "sales-daily")
    assert d["decision"] == "deny" and d["reasons"][0]["policy"] == "guard.risk.critical-changes"
    assert (d["context"]["principal_risk_level"], d["context"]["global_risk_level"]) == (3, 0)
    assert (await _decide(client, bearer, ADMIN_CONSOLE, "delete", "ledger"))["decision"] == "allow"
    events = _events(components, "context.risk.set")
    assert [e["detail"]["level"] for e in events] == [2, 0, 3]
    assert events[-1]["detail"]["principal"] == ETL


async def test_context_show_lists_values_with_sources_and_ages(client, bearer) -> None:
    await client.post("/v1/context/incidents", headers=bearer(),
                      json={"scope": "spiffe_prefix:spiffe://example.org/agents", "reason": "x"})
    r = await client.get("/v1/context", headers=bearer(),
                         params={"principal": AGENT, "resource_type": "App::Dataset"})
    assert r.status_code == 200
    body = r.json()
    [incident] = body["incidents"]
    assert incident["source"] == "memory" and incident["set_by"] == SRE
    assert incident["age_s"] == 0.0 and "since_set_s" in incident
    assert body["store"]["status"] == "ok" and body["business_hours"]["open"] is True
    assert body["snapshot"]["incident_level"] == 2
    assert body["snapshot"]["sources"]["incident"]["set_by"] == SRE
    version = (await client.get("/v1/context/version")).json()
    assert version == {"version": body["version"], "status": "ok"}
    ready = (await client.get("/readyz")).json()
    assert ready["context"]["backend"] == "memory" and ready["context"]["status"] == "ok"


async def test_malformed_incidents_and_levels_are_422(client, bearer) -> None:
    for body in ({"scope": "spiffe_prefix:https://x", "reason": "x"},
                 {"scope": "regional:eu", "reason": "x"},
                 {"level": "catastrophic", "reason": "x"},
                 {"reason": "x", "duration_s": 60, "ends_at": "2030-01-01T00:00:00Z"}):
        r = await client.post("/v1/context/incidents", headers=bearer(), json=body)
        assert r.status_code == 422, body
    r = await client.put("/v1/context/risk", headers=bearer(), json={"level": 7, "reason": "x"})
    assert r.status_code == 422


async def test_an_agent_that_bursts_denied_requests_locks_itself_out_until_its_risk_decays(
        client, components, bearer, clock) -> None:
    assert (await _decide(client, bearer, AGENT, "read", "customer-pii"))["decision"] == "allow"
    for _ in range(10):  # the finance ledger: no policy lets the reporting agent read it
        d = await _decide(client, bearer, AGENT, "read", "ledger")
        assert d["reason_codes"] == ["policy.no_permit"]
        clock.advance(1)

    d = await _decide(client, bearer, AGENT, "read", "customer-pii")
    assert d["decision"] == "deny"
    assert d["reasons"][0]["policy"] == "guard.agents.own-risk-sensitive"
    assert "risk raised to high: 10 denies in 60 s" in d["explanation"]
    assert d["context"]["signals"] == ["deny_burst"]
    assert d["context"]["sources"]["principal_risk_level"]["source"] == "behaviour"
    raised_at = clock.now() - timedelta(seconds=1)
    assert _at(d["valid_until"]) == raised_at + timedelta(seconds=120)  # the first decay step
    # Non-sensitive data stays readable, and other principals are not affected.
    assert (await _decide(client, bearer, AGENT, "read", "sales-daily"))["decision"] == "allow"
    assert (await _decide(client, bearer, ETL, "read", "customer-pii"))["decision"] == "allow"

    for _ in range(50):  # the event is written off the request path
        events = _events(components, "context.risk.auto")
        if events:
            break
        await asyncio.sleep(0.02)
    [event] = events
    assert event["principal"] is None and event["authorized_by"] is None
    assert event["detail"]["principal"] == AGENT
    assert event["detail"]["summary"] == "risk raised to high: 10 denies in 60 s"
    assert event["detail"]["evidence"] == ["10 denies in 60 s"]

    clock.advance(121)  # one decay step: high -> medium
    d = await _decide(client, bearer, AGENT, "read", "customer-pii")
    assert d["decision"] == "allow" and d["context"]["principal_risk_level"] == 1
    assert "(decayed to medium)" in d["explanation"]
    for _ in range(100):  # each decay step is an event too, written when due
        decays = [e for e in _events(components, "context.risk.auto")
                  if e["detail"]["change"] == "decayed"]
        if decays:
            break
        await asyncio.sleep(0.02)
    assert decays[0]["detail"]["level"] == 1 and decays[0]["detail"]["principal"] == AGENT
    clock.advance(120)
    d = await _decide(client, bearer, AGENT, "read", "customer-pii")
    assert d["context"]["principal_risk_level"] == 0 and "Live context" not in d["explanation"]
