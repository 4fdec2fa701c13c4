"""Done when an Express service takes its identity from the Workload API and calls the PDP
with no secret in its code or environment (issue 20).

The TypeScript SDK's example service (``sdk/typescript/examples/express-service.js``) runs
in Node against a real ``pdp serve`` that trusts ``example.org`` from its own Workload API.
Its identity is the JWT-SVID a spiffe-helper stand-in (``svid_file.py``) keeps in a file
from the service's own Workload API socket; the SDK re-reads the file on change. Then:
allow, deny, both the CA and the JWT key rotated and the old ones retired mid-run (the
file follows, the service keeps working, the caller's old token is refused), and the
identity gone (fail closed, ``pdp.credential_unavailable``).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from spiffe import WorkloadApiClient

from tests.node_sdk import SDK, node_with_sdk
from tests.server import ServerProcess
from tests.workload_api.conftest import AUDIENCE, SERVICE
from tests.workload_api.server import WorkloadApiServer
from tests.workload_api.svid_file import SvidFileWriter

pytestmark = pytest.mark.slow


def caller_token(server: WorkloadApiServer) -> str:
    client = WorkloadApiClient(server.address)
    try:
        return client.fetch_jwt_svid({AUDIENCE}).token
    finally:
        client.close()


@pytest.fixture
def express_service(pdp: ServerProcess, workload_api, socket_dir: Path
                    ) -> Iterator[tuple[str, SvidFileWriter]]:
    node = node_with_sdk()
    service_api = workload_api(SERVICE)
    writer = SvidFileWriter(service_api.address, AUDIENCE, socket_dir / "service.jwt").start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PDP_", "SPIFFE_"))}
    env.update(PDP_URL=pdp.url, PDP_TOKEN_FILE=str(writer.path), PORT="0")
    process = subprocess.Popen([node, "examples/express-service.js"], cwd=SDK, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening "), line + process.stdout.read()
        yield f"http://127.0.0.1:{line.split()[1]}", writer
    finally:
        process.terminate()
        process.wait(timeout=10)
        writer.stop()


def test_an_express_service_with_its_identity_from_the_workload_api(
        express_service, workload_api, authority) -> None:
    url, writer = express_service
    etl_api = workload_api("/services/etl")

    def get(path: str, token: str, method: str = "GET") -> httpx.Response:
        return httpx.request(method, url + path, headers={"authorization": f"Bearer {token}"},
                             timeout=10)

    token = caller_token(etl_api)
    assert get("/datasets/sales-daily", token).status_code == 200
    denied = get("/datasets/ledger", token, "PUT")
    assert denied.status_code == 403 and denied.json()["reason_codes"] == ["policy.no_permit"]

    # Rotation mid-run: a new CA and JWT key, then the old ones retired by a bundle update.
    first_file = writer.path.read_text()
    authority.rotate()
    authority.retire_oldest()
    # A question not asked before: the service's DecisionCache keeps an earlier allow until
    # its valid_until (at most the credential's expiry), whatever happened to the CA since.
    deadline = time.monotonic() + 20
    while get("/datasets/sales-daily", token, "PUT").status_code != 401:
        assert time.monotonic() < deadline, "the retired key's token is still accepted"
        time.sleep(0.1)
    deadline = time.monotonic() + 20
    while writer.path.read_text() == first_file:  # the helper wrote the new key's token
        assert time.monotonic() < deadline, "the service's token file was not rotated"
        time.sleep(0.1)
    assert get("/datasets/sales-daily", caller_token(etl_api)).status_code == 200

    # The identity is gone (the helper stopped, its file removed): fail closed, nothing sent.
    writer.stop(remove=True)
    refused = get("/datasets/sales-daily", caller_token(etl_api))
    assert refused.status_code == 403
    assert refused.json()["reason_codes"] == ["pdp.credential_unavailable"]
