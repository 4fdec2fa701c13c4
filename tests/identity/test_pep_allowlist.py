"""Who may ask: PEP identities on the allowlist, 401/403 for others, the PEP in the record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pdp.api.pep import PepAllowlist
from pdp.components import build_components
from pdp.server import create_app
from tests.identity.workloads import TrustDomain, app_client, authorize_body, settings_for

pytestmark = pytest.mark.anyio

ENVOY = "spiffe://example.org/peps/envoy"


@pytest.fixture(scope="module")
def td() -> TrustDomain:
    return TrustDomain("example.org")


@pytest.fixture
def guarded(tmp_path: Path, td: TrustDomain):
    parts = build_components(settings_for(
        tmp_path, td, pep_allowlist=[ENVOY, "spiffe://example.org/gateways/*"]))
    yield parts
    parts.close()


def pep(td: TrustDomain, path: str) -> dict[str, str]:
    return {"authorization": f"Bearer {td.jwt_svid(path)}"}


async def test_a_listed_pep_is_answered_and_recorded_with_the_decision(guarded: Any,
                                                                       td: TrustDomain) -> None:
    async with app_client(guarded) as client:
        r = await client.post("/v1/authorize", headers=pep(td, "/peps/envoy"),
                              json=authorize_body(td.jwt_svid("/services/etl")))
        batch = await client.post("/v1/authorize/batch", headers=pep(td, "/gateways/eu/one"),
                                  json={"subject": {"token": td.jwt_svid("/services/etl")},
                                        "items": [{"action": "read", "resource": {
                                            "type": "App::Dataset", "id": "sales-daily"}}]})
    assert r.status_code == 200 and r.json()["decision"] == "allow"
    assert guarded.log.get(r.json()["decision_id"])["pep"] == ENVOY
    assert batch.status_code == 200
    decision_id = batch.json()["results"][0]["decision_id"]
    assert guarded.log.get(decision_id)["pep"] == "spiffe://example.org/gateways/eu/one"


async def test_no_pep_credential_is_401_with_a_bearer_challenge(guarded: Any,
                                                                td: TrustDomain) -> None:
    async with app_client(guarded) as client:
        r = await client.post("/v1/authorize", json=authorize_body(td.jwt_svid("/services/etl")))
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["reason_codes"] == ["identity.missing"]


async def test_an_invalid_pep_credential_is_401(guarded: Any, td: TrustDomain) -> None:
    forged = TrustDomain("example.org").jwt_svid("/peps/envoy")  # signed by an unknown key
    async with app_client(guarded) as client:
        r = await client.post("/v1/authorize", headers={"authorization": f"Bearer {forged}"},
                              json=authorize_body(td.jwt_svid("/services/etl")))
    assert r.status_code == 401 and r.json()["reason_codes"] == ["identity.unknown_key"]


async def test_a_pep_not_on_the_list_is_403(guarded: Any, td: TrustDomain) -> None:
    async with app_client(guarded) as client:
        r = await client.post("/v1/authorize", headers=pep(td, "/services/etl"),
                              json=authorize_body(td.jwt_svid("/services/etl")))
        prefix_itself = await client.post("/v1/authorize", headers=pep(td, "/gateways"),
                                          json=authorize_body(td.jwt_svid("/services/etl")))
    assert r.status_code == 403 and "not on this PDP's PEP allowlist" in r.json()["detail"]
    assert prefix_itself.status_code == 403


async def test_a_revoked_pep_is_refused(guarded: Any, td: TrustDomain) -> None:
    from context.revocations import new_revocation

    guarded.revocations.add(new_revocation("spiffe_id", ENVOY))
    async with app_client(guarded) as client:
        r = await client.post("/v1/authorize", headers=pep(td, "/peps/envoy"),
                              json=authorize_body(td.jwt_svid("/services/etl")))
    assert r.status_code == 401 and r.json()["reason_codes"] == ["identity.revoked"]


async def test_the_explicit_star_opt_in_is_open_and_still_records_a_pep_that_says_who_it_is(
        tmp_path: Path, td: TrustDomain) -> None:
    parts = build_components(settings_for(tmp_path, td, pep_allowlist=["*"]))
    try:
        async with app_client(parts) as client:
            anonymous = await client.post("/v1/authorize",
                                          json=authorize_body(td.jwt_svid("/services/etl")))
            named = await client.post("/v1/authorize", headers=pep(td, "/peps/envoy"),
                                      json=authorize_body(td.jwt_svid("/services/etl")))
        assert anonymous.status_code == 200 and parts.log.get(
            anonymous.json()["decision_id"])["pep"] is None
        assert parts.log.get(named.json()["decision_id"])["pep"] == ENVOY
    finally:
        parts.close()


async def test_an_empty_allowlist_outside_dev_refuses_to_start_and_admits_nobody(
        tmp_path: Path, td: TrustDomain) -> None:
    parts = build_components(settings_for(tmp_path, td, pep_allowlist=[]))
    try:
        app = create_app(parts, watch=False)
        with pytest.raises(ValueError, match=r'pep_allowlist is empty.*pep_allowlist = \["\*"\]'):
            async with app.router.lifespan_context(app):
                pass
        # Served anyway (an app built without its start-up checks): fail closed, not open.
        async with app_client(parts, lifespan=False) as client:
            anonymous = await client.post("/v1/authorize",
                                          json=authorize_body(td.jwt_svid("/services/etl")))
            named = await client.post("/v1/authorize", headers=pep(td, "/peps/envoy"),
                                      json=authorize_body(td.jwt_svid("/services/etl")))
        assert anonymous.status_code == 401 and named.status_code == 403
    finally:
        parts.close()


def test_the_star_opt_in_stands_alone_and_the_startup_line_names_who_may_ask() -> None:
    with pytest.raises(ValueError, match="alone"):
        PepAllowlist.parse(["*", ENVOY])
    assert PepAllowlist.parse(["*"]).allows("anyone-at-all")
    assert PepAllowlist.parse(["*"]).describe() == 'any caller (pep_allowlist = ["*"])'
    assert PepAllowlist.parse([ENVOY, "spiffe://example.org/gateways/*"]).describe() == (
        f"{ENVOY}, spiffe://example.org/gateways/*")


async def test_the_allowlist_is_off_in_dev(tmp_path: Path, td: TrustDomain) -> None:
    parts = build_components(settings_for(tmp_path, td, dev=True, pep_allowlist=[ENVOY]))
    try:
        async with app_client(parts) as client:
            r = await client.post("/v1/authorize",
                                  json=authorize_body(td.jwt_svid("/services/etl")))
        assert r.status_code == 200
    finally:
        parts.close()


def test_allowlist_patterns_match_whole_path_segments() -> None:
    allow = PepAllowlist.parse(["spiffe://example.org/peps/*", "billing-gateway",
                                "spiffe://partner.example/*"])
    assert allow.allows("spiffe://example.org/peps/envoy")
    assert allow.allows("spiffe://example.org/peps/eu/envoy")
    assert allow.allows("spiffe://partner.example/anything")
    assert allow.allows("billing-gateway")
    assert not allow.allows("spiffe://example.org/peps")
    assert not allow.allows("spiffe://example.org/pepsi/envoy")
    assert not allow.allows("spiffe://example.org/services/etl")


@pytest.mark.parametrize("entry", ["spiffe://Example.org/x", "spiffe://example.org/a/*/b",
                                   "spiffe://example.org/x/", "", "peps*"])
def test_malformed_allowlist_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError):
        PepAllowlist.parse([entry])
