"""Identity through the real app: X.509 subjects, revocation end to end, lifetimes, delegation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pdp.components import build_components
from pdp.config import TrustDomainConfig
from pdp.decision.decide import credential_facts
from pdp.identity.model import VerifiedIdentity
from tests.identity.workloads import TrustDomain, app_client, authorize_body, settings_for

pytestmark = pytest.mark.anyio

SRE = "/ops/sre-console"
AGENT = "/agents/reporter"


@pytest.fixture(scope="module")
def td() -> TrustDomain:
    return TrustDomain("example.org")


@pytest.fixture
def parts(tmp_path: Path, td: TrustDomain):
    components = build_components(settings_for(tmp_path, td))
    yield components
    components.close()


def admin(td: TrustDomain) -> dict[str, str]:
    return {"authorization": f"Bearer {td.jwt_svid(SRE)}"}


def admin_events(parts: Any, event: str) -> list[dict[str, Any]]:
    return [r for r in parts.log.tail(100) if r.get("event") == event]


# -- X.509-SVID as the subject ------------------------------------------------------------

async def test_x509_svid_subject_is_verified_end_to_end(parts: Any, td: TrustDomain) -> None:
    svid = td.svid("/services/etl")
    async with app_client(parts) as client:
        r = await client.post("/v1/authorize", json=authorize_body(x509=svid.chain_pem))
    body = r.json()
    assert body["decision"] == "allow", body["explanation"]
    assert body["principal"] == 'Pdp::Workload::"spiffe://example.org/services/etl"'
    record = parts.log.get(body["decision_id"])
    assert record["credential"]["kind"] == "x509-svid"
    assert record["credential"]["serial"] == svid.serial_hex


async def test_x509_svid_of_another_trust_domain_is_refused(parts: Any) -> None:
    stranger = TrustDomain("example.org")  # same name, another CA: not in our bundle
    async with app_client(parts) as client:
        r = await client.post("/v1/authorize",
                              json=authorize_body(x509=stranger.svid("/services/etl").chain_pem))
    assert r.json()["reason_codes"] == ["identity.certificate"]


# -- revocation, end to end -------------------------------------------------------------

async def test_revoked_agent_token_is_denied_on_its_very_next_request(
        parts: Any, td: TrustDomain) -> None:
    token = td.jwt_svid(AGENT, jti="agent-run-42")
    async with app_client(parts) as client:
        first = (await client.post("/v1/authorize", json=authorize_body(token))).json()
        assert first["decision"] == "allow", first["explanation"]
        assert len(parts.verifier.cache) >= 1  # the token is now a cache hit

        r = await client.post("/v1/revocations", headers=admin(td), json={
            "kind": "jti", "value": "agent-run-42", "reason": "agent went rogue"})
        assert r.status_code == 201, r.text
        revocation = r.json()["revocation"]

        second = (await client.post("/v1/authorize", json=authorize_body(token))).json()
    assert second["decision"] == "deny"
    assert second["reason_codes"] == ["identity.revoked"]
    assert revocation["id"] in second["explanation"]
    event = admin_events(parts, "identity.revoke")[-1]
    assert event["kind"] == "admin"
    assert event["principal"] == f"spiffe://example.org{SRE}"
    assert event["detail"]["revocation"]["value"] == "agent-run-42"
    authorizing = parts.log.get(event["authorized_by"])
    assert authorizing["decision"] == "allow"
    assert authorizing["action"] == 'Pdp::Action::"identity.revoke"'
    assert parts.log.verify().ok


async def test_unrevoke_lifts_it_and_is_recorded_first(parts: Any, td: TrustDomain) -> None:
    token = td.jwt_svid(AGENT)
    async with app_client(parts) as client:
        created = (await client.post("/v1/revocations", headers=admin(td), json={
            "kind": "spiffe_id", "value": f"spiffe://example.org{AGENT}"})).json()
        denied = (await client.post("/v1/authorize", json=authorize_body(token))).json()
        listed = (await client.get("/v1/revocations", headers=admin(td))).json()
        r = await client.delete(f"/v1/revocations/{created['revocation']['id']}",
                                headers=admin(td))
        allowed = (await client.post("/v1/authorize", json=authorize_body(token))).json()
        missing = await client.delete(f"/v1/revocations/{created['revocation']['id']}",
                                      headers=admin(td))
    assert denied["reason_codes"] == ["identity.revoked"]
    assert [e["id"] for e in listed["revocations"]] == [created["revocation"]["id"]]
    assert r.status_code == 200 and allowed["decision"] == "allow"
    assert missing.status_code == 404
    assert admin_events(parts, "identity.unrevoke")[-1]["detail"]["revocation"]["kind"] == \
        "spiffe_id"


async def test_revoking_twice_is_idempotent(parts: Any, td: TrustDomain) -> None:
    body = {"kind": "spiffe_prefix", "value": "spiffe://example.org/agents/*"}
    async with app_client(parts) as client:
        first = await client.post("/v1/revocations", headers=admin(td), json=body)
        again = await client.post("/v1/revocations", headers=admin(td), json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["revocation"]["value"] == "spiffe://example.org/agents"
    assert len(admin_events(parts, "identity.revoke")) == 1


async def test_revocation_admin_api_is_authorized_by_the_bundle(parts: Any,
                                                                td: TrustDomain) -> None:
    body = {"kind": "jti", "value": "x"}
    async with app_client(parts) as client:
        anonymous = await client.post("/v1/revocations", json=body)
        pipeline = await client.post("/v1/revocations", json=body, headers={
            "authorization": f"Bearer {td.jwt_svid('/services/etl')}"})
        stale = await client.post("/v1/revocations", json=body, headers={
            "authorization": f"Bearer {td.jwt_svid(SRE, age_s=400, ttl_s=900)}"})
        reader = await client.get("/v1/revocations", headers={
            "authorization": f"Bearer {td.jwt_svid('/audit/auditor')}"})
    assert anonymous.status_code == 401
    assert pipeline.status_code == 403
    assert stale.status_code == 403 and stale.json()["reason_codes"] == ["policy.forbid"]
    assert reader.status_code == 403
    assert parts.revocations.list() == []


@pytest.mark.parametrize("body", [
    {"kind": "spiffe_id", "value": "spiffe://Example.org/x"},
    {"kind": "spiffe_id", "value": "spiffe://example.org"},
    {"kind": "cert", "value": "1f"},
    {"kind": "cert", "value": "zz", "issuer": "O=x"},
    {"kind": "issued_before", "value": "example.org"},
    {"kind": "issued_before", "value": "example.org", "before": "2026-01-01T00:00:00"},
    {"kind": "jti", "value": "x", "before": "2026-01-01T00:00:00Z"},
    {"kind": "nonsense", "value": "x"},
])
async def test_malformed_revocations_are_422(parts: Any, td: TrustDomain,
                                             body: dict[str, Any]) -> None:
    async with app_client(parts) as client:
        r = await client.post("/v1/revocations", headers=admin(td), json=body)
    assert r.status_code == 422, r.text
    assert parts.revocations.list() == []


async def test_certificate_revocation_by_issuer_and_serial(parts: Any, td: TrustDomain) -> None:
    svid = td.svid("/services/etl", serial=0x1FA0)
    async with app_client(parts) as client:
        await client.post("/v1/revocations", headers=admin(td), json={
            "kind": "cert", "value": "1f:a0", "issuer": svid.issuer_dn})
        r = await client.post("/v1/authorize", json=authorize_body(x509=svid.chain_pem))
        other = await client.post("/v1/authorize", json=authorize_body(
            x509=td.svid("/services/etl", serial=0x1FA1).chain_pem))
    assert r.json()["reason_codes"] == ["identity.revoked"]
    assert other.json()["decision"] == "allow"


async def test_everything_a_trust_domain_issued_before_a_time_is_refused(
        parts: Any, td: TrustDomain) -> None:
    old = td.jwt_svid("/services/etl", age_s=120)
    async with app_client(parts) as client:
        cutoff = parts.clock.now().replace(microsecond=0)
        await client.post("/v1/revocations", headers=admin(td), json={
            "kind": "issued_before", "value": "example.org",
            "before": (cutoff - timedelta(seconds=60)).isoformat()})
        refused = (await client.post("/v1/authorize", json=authorize_body(old))).json()
        fresh = (await client.post("/v1/authorize",
                                   json=authorize_body(td.jwt_svid("/services/etl")))).json()
    assert refused["reason_codes"] == ["identity.revoked"]
    assert fresh["decision"] == "allow"


# -- lifetimes -----------------------------------------------------------------------------

async def test_token_over_the_maximum_lifetime_is_denied(parts: Any, td: TrustDomain) -> None:
    token = td.jwt_svid("/services/etl", ttl_s=7200)
    async with app_client(parts) as client:
        r = await client.post("/v1/authorize", json=authorize_body(token))
    assert r.json()["reason_codes"] == ["identity.lifetime_exceeded"]


async def test_flagged_lifetime_is_visible_in_the_decision_and_the_record(
        tmp_path: Path, td: TrustDomain) -> None:
    settings = settings_for(tmp_path, td)
    settings.trust_domains[0] = TrustDomainConfig(
        name="example.org", bundle_file=settings.trust_domains[0].bundle_file,
        max_lifetime_s=600, lifetime_policy="flag")
    parts = build_components(settings)
    try:
        async with app_client(parts) as client:
            r = await client.post("/v1/authorize", json=authorize_body(
                td.jwt_svid("/services/etl", ttl_s=3600)))
        body = r.json()
        assert body["decision"] == "allow"
        assert [e["code"] for e in body["errors"]] == ["identity.lifetime_exceeded"]
        assert "flag" in body["errors"][0]["message"]
        record = parts.log.get(body["decision_id"])
        assert record["credential"]["flags"] == ["lifetime_exceeded"]
    finally:
        parts.close()


async def test_context_credential_carries_age_ttl_lifetime_and_kind(parts: Any) -> None:
    now = parts.clock.now()
    identity = VerifiedIdentity(principal_id="spiffe://example.org/x", kind="jwt-svid",
                                issuer="spiffe://example.org", issued_at=now - timedelta(seconds=30),
                                expires_at=now + timedelta(seconds=270))
    assert credential_facts(identity, now) == {
        "kind": "jwt-svid", "age_s": 30, "ttl_s": 270, "lifetime_s": 300, "delegated": False,
        "actor": "", "chain_depth": 0}


# -- delegation through the API -----------------------------------------------------------

async def test_delegated_token_needs_the_actor_allowed_too(parts: Any, td: TrustDomain) -> None:
    ok = td.jwt_svid(AGENT, act={"sub": "spiffe://example.org/services/etl"})
    refused = td.jwt_svid(AGENT, act={"sub": "spiffe://example.org/services/unknown"})
    async with app_client(parts) as client:
        allow = (await client.post("/v1/authorize", json=authorize_body(ok))).json()
        deny = (await client.post("/v1/authorize", json=authorize_body(refused))).json()
    assert allow["decision"] == "allow"
    assert {r["policy"] for r in allow["reasons"]} == {
        "dataset.analytics.read", "dataset.pipelines.read-write"}
    assert deny["decision"] == "deny" and deny["reason_codes"] == ["policy.no_permit"]
    assert "acting workload spiffe://example.org/services/unknown" in deny["explanation"]
    record = parts.log.get(deny["decision_id"])
    assert record["credential"]["actor"] == "spiffe://example.org/services/unknown"


async def test_delegation_deeper_than_the_configured_cap_is_refused(
        tmp_path: Path, td: TrustDomain) -> None:
    parts = build_components(settings_for(tmp_path, td, delegation_max_depth=1))
    chain = {"sub": "spiffe://example.org/services/etl",
             "act": {"sub": "spiffe://example.org/services/admin-console"}}
    try:
        async with app_client(parts) as client:
            r = await client.post("/v1/authorize", json=authorize_body(
                td.jwt_svid(AGENT, act=chain)))
            one = await client.post("/v1/authorize", json=authorize_body(
                td.jwt_svid(AGENT, act={"sub": "spiffe://example.org/services/etl"})))
        assert r.json()["reason_codes"] == ["identity.claims"]
        assert one.json()["decision"] == "allow"
    finally:
        parts.close()


@pytest.mark.parametrize("policy", ["deny", "flag"])
async def test_x509_svid_over_its_trust_domains_maximum_lifetime(
        tmp_path: Path, td: TrustDomain, policy: str) -> None:
    settings = settings_for(tmp_path, td)
    settings.trust_domains[0] = TrustDomainConfig(
        name="example.org", bundle_file=settings.trust_domains[0].bundle_file,
        x509_max_lifetime_s=3600, lifetime_policy=policy)  # type: ignore[arg-type]
    parts = build_components(settings)
    try:
        async with app_client(parts) as client:
            long_lived = td.svid("/services/etl")  # 65 minutes
            body = (await client.post("/v1/authorize",
                                      json=authorize_body(x509=long_lived.chain_pem))).json()
        if policy == "deny":
            assert body["reason_codes"] == ["identity.lifetime_exceeded"]
        else:
            assert body["decision"] == "allow"
            assert [e["code"] for e in body["errors"]] == ["identity.lifetime_exceeded"]
    finally:
        parts.close()
