"""``Authorization: Bearer`` is read by FastAPI's HTTPBearer (pdp.api.bearer): a missing or
malformed header is no credential (401 ``identity.missing``, recorded), a token that is
not one is refused by verification, and OpenAPI documents whose token each scheme is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pdp.components import build_components
from tests.identity.workloads import TrustDomain, app_client, authorize_body, settings_for

pytestmark = pytest.mark.anyio

SRE = "spiffe://example.org/ops/sre-console"
ENVOY = "spiffe://example.org/peps/envoy"


@pytest.mark.parametrize(("header", "code"), [
    (None, "identity.missing"),
    ("Basic c3JlOnNlY3JldA==", "identity.missing"),  # another scheme: no bearer credential
    ("Bearer", "identity.missing"),  # no token
    ("Bearer    ", "identity.missing"),
    ("Bearer not-a-jwt", "identity.malformed"),  # a token, refused by verification
])
async def test_an_admin_call_without_a_usable_bearer_is_a_recorded_401(
        client, components, header: str | None, code: str) -> None:
    headers = {"authorization": header} if header is not None else {}
    r = await client.get("/v1/revocations", headers=headers)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["reason_codes"] == [code]
    assert components.log.get(r.json()["decision_id"])["decision"] == "deny"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_the_scheme_is_case_insensitive_and_the_token_trimmed(client, mint,
                                                                   scheme: str) -> None:
    r = await client.get("/v1/revocations",
                         headers={"authorization": f"{scheme}  {mint(SRE)} "})
    assert r.status_code == 200, r.text


@pytest.fixture
def guarded(tmp_path: Path) -> Any:
    td = TrustDomain("example.org")
    parts = build_components(settings_for(tmp_path, td, pep_allowlist=[ENVOY]))
    yield td, parts
    parts.close()


@pytest.mark.parametrize("path", ["/v1/authorize", "/access/v1/evaluation"])
@pytest.mark.parametrize("header", [None, "Basic ZW52b3k=", "Bearer "])
async def test_a_pep_without_a_usable_bearer_is_refused_on_the_fast_doors(
        guarded: Any, path: str, header: str | None) -> None:
    td, parts = guarded
    token = td.jwt_svid("/services/etl")
    body: dict[str, Any] = authorize_body(token) if path == "/v1/authorize" else {
        "subject": {"type": "Pdp::Workload", "id": "spiffe://example.org/services/etl",
                    "properties": {"token": token}},
        "action": {"name": "read"}, "resource": {"type": "App::Dataset", "id": "sales-daily"}}
    headers = {"authorization": header} if header is not None else {}
    async with app_client(parts, lifespan=False) as client:
        r = await client.post(path, json=body, headers={**headers, "x-request-id": "b-1"})
    assert r.status_code == 401 and r.json()["reason_codes"] == ["identity.missing"]
    assert r.headers["x-request-id"] == "b-1"
    assert parts.log.get(r.json()["decision_id"])["request_id"] == "b-1"


async def test_openapi_names_whose_token_each_operation_reads(client) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert {name: s["scheme"] for name, s in schemes.items()} == {
        "pepBearer": "bearer", "adminBearer": "bearer", "forwardedBearer": "bearer"}
    paths = spec["paths"]
    # A PEP may use a TLS client certificate instead, a gateway's request may carry none:
    # optional ({}); an admin call needs its bearer.
    assert paths["/v1/authorize"]["post"]["security"] == [{"pepBearer": []}, {}]
    assert paths["/access/v1/evaluation"]["post"]["security"] == [{"pepBearer": []}, {}]
    assert paths["/v1/gateway/nginx"]["get"]["security"] == [{"forwardedBearer": []}, {}]
    assert paths["/v1/revocations"]["get"]["security"] == [{"adminBearer": []}]
