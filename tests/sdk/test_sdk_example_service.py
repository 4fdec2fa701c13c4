"""End to end: the example service (sdk/python/examples) in front of a real PDP process.

Two real processes on loopback — `pdp serve --dev` and the example service
under uvicorn — and plain HTTP between them, as in production.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import POLICIES, REPO
from tests.server import ServerProcess, free_port, start_server

EXAMPLES = REPO / "sdk" / "python" / "examples"
ETL = "spiffe://example.org/services/etl"


@pytest.fixture
def pdp(tmp_path: Path) -> Iterator[ServerProcess]:
    shutil.copytree(POLICIES, tmp_path / "policies")
    server = start_server(["--dev"], cwd=tmp_path)
    yield server
    server.stop()


@pytest.fixture
def service(tmp_path: Path, pdp: ServerProcess) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "service.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "datasets_service:app", "--app-dir", str(EXAMPLES),
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        # A generous timeout: on a loaded CI machine the PDP's first decision can be slow,
        # and a timeout would (correctly) fail closed with 403 pdp.unreachable.
        env={**os.environ, "PDP_URL": pdp.url, "PDP_TIMEOUT": "15"}, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError((tmp_path / "service.log").read_text())
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def test_the_example_service_is_protected_by_the_pdp(service: str, pdp: ServerProcess,
                                                     tmp_path: Path) -> None:
    from pdp.identity.dev_issuer import DevIssuer

    token = DevIssuer.load_or_create(tmp_path / ".pdp").mint(ETL)
    auth = {"authorization": f"Bearer {token}"}

    read = httpx.get(f"{service}/datasets/sales-daily", headers=auth)
    assert read.status_code == 200
    assert read.json()["rows"] and read.json()["decision_id"]
    again = httpx.get(f"{service}/datasets/sales-daily", headers=auth)
    assert again.json()["cached"] is True  # the SDK's cache answered

    written = httpx.put(f"{service}/datasets/sales-daily", headers=auth, json=[{"total": 1}])
    assert written.status_code == 200 and written.json()["written"] == 1

    denied = httpx.put(f"{service}/datasets/ledger", headers=auth, json=[])
    assert denied.status_code == 403
    assert denied.json()["detail"]["explanation"].startswith("Denied: no policy permits")
    assert denied.headers["x-pdp-decision-id"] == denied.json()["detail"]["decision_id"]

    anonymous = httpx.get(f"{service}/datasets/sales-daily")
    assert anonymous.status_code == 401

    pdp.stop()  # the PDP goes away: the service fails closed, it does not fail open
    unreachable = httpx.get(f"{service}/datasets/customer-pii", headers=auth)
    assert unreachable.status_code == 403
    assert unreachable.json()["detail"]["reason_codes"] == ["pdp.unreachable"]
