"""Envoy ext_authz (HTTP service) and nginx auth_request, through the real app."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio

ENVOY = "/v1/gateway/envoy"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def nginx_headers(method: str, uri: str, **extra: str) -> dict[str, str]:
    return {"x-original-method": method, "x-original-uri": uri, **extra}


async def test_envoy_allow_is_200_with_the_decision_id(client, components, token) -> None:
    r = await client.get(f"{ENVOY}/datasets/sales-daily", headers=bearer(token))
    assert r.status_code == 200
    record = components.log.get(r.headers["x-pdp-decision-id"])
    assert record["decision"] == "allow" and record["action"] == 'App::Action::"read"'
    assert record["resource"] == 'App::Dataset::"sales-daily"'
    assert record["pep"] == "envoy@127.0.0.1"


async def test_envoy_deny_is_403_with_the_json_explanation(client, token) -> None:
    r = await client.put(f"{ENVOY}/datasets/ledger", headers=bearer(token))
    assert r.status_code == 403 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["decision"] == "deny" and body["reason_codes"] == ["policy.no_permit"]
    assert body["explanation"].startswith("Denied: no policy permits")
    assert r.headers["x-pdp-decision-id"] == body["decision_id"]


async def test_envoy_forwards_the_original_method(client, token) -> None:
    """The same path is read (GET, allowed) or written (PUT, its own route)."""
    assert (await client.get(f"{ENVOY}/datasets/customer-pii", headers=bearer(token))).status_code == 200
    assert (await client.put(f"{ENVOY}/datasets/customer-pii", headers=bearer(token))).status_code == 200
    r = await client.delete(f"{ENVOY}/datasets/customer-pii", headers=bearer(token))
    assert r.status_code == 403 and r.json()["reason_codes"] == ["request.no_route"]


async def test_a_request_no_route_matches_is_403(client, token) -> None:
    r = await client.get(f"{ENVOY}/admin/users", headers=bearer(token))
    assert r.status_code == 403
    assert r.json()["reason_codes"] == ["request.no_route"]
    assert "no route matches GET /admin/users" in r.json()["explanation"]


async def test_an_ambiguous_path_is_403(client, token) -> None:
    r = await client.get(f"{ENVOY}/public/..%2Fdatasets/ledger", headers=bearer(token))
    assert r.status_code == 403 and r.json()["reason_codes"] == ["request.invalid"]


async def test_no_credential_is_403(client) -> None:
    r = await client.get(f"{ENVOY}/datasets/sales-daily")
    assert r.status_code == 403 and r.json()["reason_codes"] == ["identity.missing"]


async def test_a_forwarded_client_certificate_from_a_trusted_proxy_is_the_credential(
        client, components, svid) -> None:
    r = await client.get(f"{ENVOY}/datasets/sales-daily",
                         headers={"x-forwarded-client-cert": svid.xfcc()})
    assert r.status_code == 200
    record = components.log.get(r.headers["x-pdp-decision-id"])
    assert record["credential"]["kind"] == "x509-svid"
    assert record["principal"] == svid.spiffe_id


async def test_a_forwarded_client_certificate_from_anyone_else_is_ignored(
        untrusted_client, svid) -> None:
    r = await untrusted_client.get(f"{ENVOY}/datasets/sales-daily",
                                   headers={"x-forwarded-client-cert": svid.xfcc()})
    assert r.status_code == 403 and r.json()["reason_codes"] == ["identity.missing"]


async def test_nginx_reads_the_original_method_and_uri(client, components, token) -> None:
    allow = await client.get("/v1/gateway/nginx", headers={
        **bearer(token), **nginx_headers("GET", "/datasets/sales-daily?x=1")})
    assert allow.status_code == 200 and allow.headers["x-pdp-decision-id"]
    deny = await client.get("/v1/gateway/nginx", headers={
        **bearer(token), **nginx_headers("PUT", "/datasets/ledger")})
    assert deny.status_code == 403 and deny.json()["reason_codes"] == ["policy.no_permit"]


async def test_nginx_takes_its_escaped_client_certificate_from_a_trusted_proxy(client, svid) -> None:
    r = await client.get("/v1/gateway/nginx", headers=nginx_headers(
        "GET", "/datasets/sales-daily", **{"ssl-client-escaped-cert": svid.escaped()}))
    assert r.status_code == 200


async def test_nginx_without_the_original_request_headers_is_403(client, token) -> None:
    r = await client.get("/v1/gateway/nginx", headers=bearer(token))
    assert r.status_code == 403 and r.json()["reason_codes"] == ["request.invalid"]


async def test_any_internal_failure_is_403(client, components, token, monkeypatch) -> None:
    async def broken(_request):
        raise RuntimeError("the engine is on fire")

    monkeypatch.setattr(components.service, "authorize", broken)
    r = await client.get(f"{ENVOY}/datasets/sales-daily", headers=bearer(token))
    assert r.status_code == 403 and r.json()["reason_codes"] == ["engine.error"]
    r = await client.get("/v1/gateway/nginx", headers={
        **bearer(token), **nginx_headers("GET", "/datasets/sales-daily")})
    assert r.status_code == 403


async def test_the_request_id_is_echoed_and_recorded(client, components, token) -> None:
    r = await client.get(f"{ENVOY}/datasets/sales-daily",
                         headers={**bearer(token), "x-request-id": "envoy-rid-1"})
    assert r.headers["x-request-id"] == "envoy-rid-1"
    assert components.log.get(r.headers["x-pdp-decision-id"])["request_id"] == "envoy-rid-1"


async def test_with_an_enforced_allowlist_only_trusted_proxies_may_ask(
        client, untrusted_client, components, token, monkeypatch) -> None:
    monkeypatch.setattr(components.settings, "dev", False)
    monkeypatch.setattr(components.settings, "pep_allowlist", ["spiffe://example.org/peps/*"])
    refused = await untrusted_client.get(f"{ENVOY}/datasets/sales-daily", headers=bearer(token))
    assert refused.status_code == 403 and refused.json()["reason_codes"] == ["identity.missing"]
    # (the dev issuer's tokens are still verified: the components were built with it)
    assert (await client.get(f"{ENVOY}/datasets/sales-daily", headers=bearer(token))).status_code == 200


async def test_a_malformed_forwarded_certificate_from_a_trusted_proxy_is_403(client) -> None:
    r = await client.get(f"{ENVOY}/datasets/sales-daily",
                         headers={"x-forwarded-client-cert": 'Cert="unbalanced'})
    assert r.status_code == 403 and r.json()["reason_codes"] == ["identity.malformed"]
