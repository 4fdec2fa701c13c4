"""FastAPI dependency and ASGI middleware: a service protected by the SDK.

The service and the PDP are both real apps, in-process: the service is driven
through httpx's ASGI transport, and its SDK client reaches the PDP through
another one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from pdp_client import PDP_UNREACHABLE, AsyncPDPClient, Decision, Route
from pdp_client.fastapi import PDP
from pdp_client.middleware import PDPMiddleware

from pdp.components import Components, build_components
from pdp.config import load_settings
from pdp.server import create_app
from tests.gateways.certs import Svid, make_svid
from tests.server import free_port

pytestmark = pytest.mark.anyio

ETL = "spiffe://example.org/services/etl"
PROXY = ("127.0.0.1", 40000)
STRANGER = ("192.0.2.7", 40000)


@pytest.fixture(scope="module")
def svid() -> Svid:
    return make_svid(ETL)


@pytest.fixture
def components(tmp_path: Path, bundle_copy, svid: Svid) -> Iterator[Components]:
    parts = build_components(load_settings(
        None, dev=True, policies=bundle_copy(), state_dir=tmp_path / "state",
        watch_policies=False,
        trust_domains=[{"name": "example.org",
                        "bundle_file": svid.write_bundle(tmp_path / "bundle.json")}]))
    yield parts
    parts.close()


@pytest.fixture
async def pdp_client(components: Components) -> AsyncIterator[AsyncPDPClient]:
    app = create_app(components, watch=False)
    async with app.router.lifespan_context(app):
        async with AsyncPDPClient("http://pdp", transport=httpx.ASGITransport(app=app)) as c:
            yield c


def datasets_service(authorizer) -> FastAPI:
    pdp = PDP(authorizer, namespace="App", trusted_proxies=["127.0.0.1"])
    app = FastAPI()

    @app.get("/datasets/{name}")
    async def read(name: str, decision: Decision = Depends(pdp.require(
            "read", resource=lambda req: ("Dataset", req.path_params["name"])))) -> dict:
        return {"dataset": name, "decision_id": decision.decision_id}

    @app.get("/reports/{name}")
    async def report(name: str, decision: Decision = Depends(pdp.require(
            "read", resource=lambda req: ("Dataset", req.path_params["name"]),
            context={"purpose": "monthly report"}))) -> dict:
        return {"dataset": name}

    return app


def drive(app, client=PROXY) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=client),
                             base_url="http://service")


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_an_allowed_request_reaches_the_endpoint_with_its_decision(
        pdp_client, components) -> None:
    async with drive(datasets_service(pdp_client)) as service:
        r = await service.get("/datasets/sales-daily", headers=bearer(components.dev_issuer.mint(ETL)))
        with_context = await service.get("/reports/sales-daily",
                                         headers=bearer(components.dev_issuer.mint(ETL)))
    assert r.status_code == 200 and r.json()["dataset"] == "sales-daily"
    assert components.log.get(r.json()["decision_id"])["decision"] == "allow"
    assert with_context.status_code == 200


async def test_a_denied_request_is_403_with_the_explanation(pdp_client, components) -> None:
    async with drive(datasets_service(pdp_client)) as service:
        r = await service.get("/datasets/ledger", headers=bearer(components.dev_issuer.mint(ETL)))
    assert r.status_code == 403
    detail = r.json()["detail"]
    assert detail["decision"] == "deny" and detail["reason_codes"] == ["policy.no_permit"]
    assert detail["explanation"].startswith("Denied: no policy permits")
    assert r.headers["x-pdp-decision-id"] == detail["decision_id"]


async def test_no_credential_or_a_bad_one_is_401_with_a_bearer_challenge(pdp_client) -> None:
    async with drive(datasets_service(pdp_client)) as service:
        missing = await service.get("/datasets/sales-daily")
        bad = await service.get("/datasets/sales-daily", headers=bearer("not.a.jwt"))
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json()["detail"]["reason_codes"] == ["identity.missing"]
    assert bad.status_code == 401 and bad.json()["detail"]["reason_codes"][0].startswith("identity.")


async def test_a_certificate_forwarded_by_a_trusted_proxy_is_the_credential(
        pdp_client, svid) -> None:
    headers = {"x-forwarded-client-cert": svid.xfcc()}
    async with drive(datasets_service(pdp_client)) as service:
        assert (await service.get("/datasets/sales-daily", headers=headers)).status_code == 200
    async with drive(datasets_service(pdp_client), client=STRANGER) as service:
        r = await service.get("/datasets/sales-daily", headers=headers)
    assert r.status_code == 401  # from anyone else the header is ignored
    escaped = {"ssl-client-escaped-cert": svid.escaped()}
    async with drive(datasets_service(pdp_client)) as service:
        assert (await service.get("/datasets/sales-daily", headers=escaped)).status_code == 200


async def test_an_unreachable_pdp_fails_closed_with_403() -> None:
    async with AsyncPDPClient(f"http://127.0.0.1:{free_port()}", retries=0) as down:
        async with drive(datasets_service(down)) as service:
            r = await service.get("/datasets/sales-daily", headers=bearer("any.jwt.token"))
    assert r.status_code == 403
    assert r.json()["detail"]["reason_codes"] == [PDP_UNREACHABLE]


# --- ASGI middleware driven by a route table ------------------------------------------

ROUTES = [
    Route("GET", "/datasets/{name}", action="read", resource_type="App::Dataset",
          resource_id="{name}"),
    {"method": "PUT", "path": "/datasets/{name}", "action": "write",
     "resource_type": "App::Dataset", "resource_id": "{name}"},
]


def guarded_app(authorizer, unmatched: str = "deny") -> FastAPI:
    app = FastAPI()

    @app.get("/datasets/{name}")
    async def read(name: str, request: Request) -> dict:
        return {"dataset": name, "decision_id": request.state.pdp_decision.decision_id}

    @app.put("/datasets/{name}")
    async def write(name: str) -> dict:
        return {"written": name}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    app.add_middleware(PDPMiddleware, authorizer=authorizer, routes=ROUTES, unmatched=unmatched,
                       trusted_proxies=["127.0.0.1"])
    return app


async def test_the_middleware_lets_allowed_requests_through_with_the_decision(
        pdp_client, components) -> None:
    token = components.dev_issuer.mint(ETL)
    async with drive(guarded_app(pdp_client)) as service:
        allowed = await service.get("/datasets/sales-daily", headers=bearer(token))
        denied = await service.put("/datasets/ledger", headers=bearer(token))
        anonymous = await service.get("/datasets/sales-daily")
    assert allowed.status_code == 200 and allowed.json()["decision_id"]
    assert denied.status_code == 403 and denied.json()["reason_codes"] == ["policy.no_permit"]
    assert denied.headers["x-pdp-decision-id"] == denied.json()["decision_id"]
    assert anonymous.status_code == 401


async def test_the_middleware_denies_unmatched_routes_unless_told_otherwise(pdp_client) -> None:
    async with drive(guarded_app(pdp_client)) as service:
        closed = await service.get("/healthz")
        ambiguous = await service.get("/datasets/..%2Fadmin")
    assert closed.status_code == 403 and closed.json()["reason_codes"] == ["request.no_route"]
    assert ambiguous.status_code == 403
    async with drive(guarded_app(pdp_client, unmatched="allow")) as service:
        assert (await service.get("/healthz")).status_code == 200
