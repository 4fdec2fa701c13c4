"""Done when a service takes its identity from the Workload API and calls the PDP with
no secret in its code or environment (issue 20), against a real ``pdp serve``.

A real ``pdp serve`` (not ``--dev``) trusts ``example.org`` from its own Workload API
and lets only the datasets service ask (``pep_allowlist``). The FastAPI service's
``pep_token`` is a ``WorkloadApiToken`` on the service's own socket; the caller (the ETL
pipeline) presents the JWT-SVID its socket gives it. Then: allow, deny, both CAs
rotated mid-run (the old one retired: the caller's old token is refused, a new one and
the service's own refreshed token work), and the service's agent gone (fail closed).
"""

from __future__ import annotations

import time

import httpx
import pytest
from fastapi import Depends, FastAPI
from pdp_client import PDP_CREDENTIAL_UNAVAILABLE, AsyncPDPClient
from pdp_client.fastapi import PDP
from pdp_client.workload_api import WorkloadApiToken
from spiffe import WorkloadApiClient

from tests.server import ServerProcess
from tests.workload_api.conftest import AUDIENCE, SERVICE
from tests.workload_api.server import WorkloadApiServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def caller_token(server: WorkloadApiServer) -> str:
    client = WorkloadApiClient(server.address)
    try:
        return client.fetch_jwt_svid({AUDIENCE}).token
    finally:
        client.close()


def service_app(pdp_url: str, socket: str) -> tuple[FastAPI, WorkloadApiToken]:
    # The whole of the service's identity handling: a socket path, and the PDP's audience.
    identity = WorkloadApiToken(AUDIENCE, socket=socket, timeout_s=2)
    guard = PDP(AsyncPDPClient(pdp_url, pep_token=identity, retries=0), namespace="App")
    app = FastAPI()

    @app.get("/datasets/{name}")
    async def read(name: str, decision=Depends(guard.require(
            "read", resource=lambda r: ("Dataset", r.path_params["name"])))):
        return {"dataset": name}

    @app.put("/datasets/{name}")
    async def write(name: str, decision=Depends(guard.require(
            "write", resource=lambda r: ("Dataset", r.path_params["name"])))):
        return {"dataset": name}

    return app, identity


async def test_a_fastapi_service_with_its_identity_from_the_workload_api(
        pdp: ServerProcess, workload_api, authority):
    service_api, etl_api = workload_api(SERVICE), workload_api("/services/etl")
    app, identity = service_app(pdp.url, service_api.address)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as svc:
        async def get(path: str, token: str, method: str = "GET") -> httpx.Response:
            return await svc.request(method, path, headers={"authorization": f"Bearer {token}"})

        token = caller_token(etl_api)
        assert (await get("/datasets/sales-daily", token)).status_code == 200
        denied = await get("/datasets/ledger", token, "PUT")
        assert denied.status_code == 403
        assert denied.json()["detail"]["reason_codes"] == ["policy.no_permit"]

        # Another workload of the domain is not an allowed PEP: the service's identity is
        # what the PDP checked, not just any JWT-SVID.
        other = WorkloadApiToken(AUDIENCE, socket=etl_api.address)
        guard = PDP(AsyncPDPClient(pdp.url, pep_token=other, retries=0))
        status, decision = await guard.guard.check(
            headers={"authorization": f"Bearer {token}"}, peer=None, action="read",
            resource=("App::Dataset", "sales-daily"))
        assert status == 403 and decision.decision == "deny"
        other.close()

        # Rotation mid-run: a new CA, then the old one retired by a bundle update.
        authority.rotate()
        authority.retire_oldest()
        deadline = time.monotonic() + 20
        while (await get("/datasets/sales-daily", token)).status_code != 401:
            assert time.monotonic() < deadline, "the retired CA's token is still accepted"
            time.sleep(0.1)
        # The service's own token was dropped on rotation and refetched from the new key.
        assert (await get("/datasets/sales-daily", caller_token(etl_api))).status_code == 200

        # The service's agent goes away and its token is gone: fail closed, nothing sent.
        service_api.stop()
        identity.invalidate()
        refused = await get("/datasets/sales-daily", caller_token(etl_api))
        assert refused.status_code == 403
        assert refused.json()["detail"]["reason_codes"] == [PDP_CREDENTIAL_UNAVAILABLE]
    identity.close()
