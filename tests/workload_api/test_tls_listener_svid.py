"""``tls_workload_api = true``: the PDP's TLS listener on its own X.509-SVID from the
Workload API, rotated without a restart (a real ``pdp serve``, real handshakes).

The served certificate is the agent's SVID; after the agent rotates it — and after the
CA itself is rotated — new connections get the new one from the same process. PEPs
authenticate with their own X.509-SVID (client certificate, from the agent's CAs, a new
CA's included).
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from spiffe import WorkloadApiClient

from tests.server import free_port
from tests.workload_api.conftest import AUDIENCE, SERVICE, write_pdp_config
from tests.workload_api.server import Authority, WorkloadApiServer


def served_serial(port: int, cafile: Path) -> int:
    context = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def roots_file(authority: Authority, path: Path) -> Path:
    path.write_text("".join(g.root.chain_pem for g in authority.generations))
    return path


@pytest.fixture
def tls_pdp(tmp_path: Path, workload_api) -> Iterator[tuple[int, WorkloadApiServer]]:
    pdp_api = workload_api("/pdp")
    write_pdp_config(tmp_path, pdp_api, tls=True)
    port = free_port()
    log = tmp_path / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "pdp.cli.main", "serve", "--config", "pdp.toml",
         "--port", str(port)], cwd=tmp_path, stdout=log.open("wb"),
        stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield port, pdp_api
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert (tmp_path / "state" / "tls" / "svid.key").stat().st_mode & 0o077 == 0


def test_the_listener_serves_the_agents_svid_and_follows_rotations(
        tls_pdp, workload_api, authority, tmp_path) -> None:
    port, pdp_api = tls_pdp
    cafile = roots_file(authority, tmp_path / "roots.pem")
    first = served_serial(port, cafile)
    assert first == pdp_api.svid.cert.serial_number

    # The PEP (the datasets service) authenticates by its own X.509-SVID.
    service_api, etl_api = workload_api(SERVICE), workload_api("/services/etl")
    client = WorkloadApiClient(etl_api.address)
    caller = client.fetch_jwt_svid({AUDIENCE}).token
    client.close()

    def ask(pep: WorkloadApiServer | None) -> httpx.Response:
        context = ssl.create_default_context(cafile=str(roots_file(authority, cafile)))
        if pep is not None:
            cert, key = pep.svid.write(tmp_path, "pep")
            context.load_cert_chain(cert, key)
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=context,
                          timeout=10) as http:
            return http.post("/v1/authorize", json={
                "subject": {"token": caller}, "action": "read",
                "resource": {"type": "App::Dataset", "id": "sales-daily"}})

    assert ask(service_api).json()["decision"] == "allow"
    assert ask(None).status_code == 401  # no client certificate, no bearer: not a PEP

    pdp_api.rotate_svid()  # the agent rotates the PDP's SVID: new connections get it
    deadline = time.monotonic() + 20
    while served_serial(port, cafile) == first:
        assert time.monotonic() < deadline, "the listener still serves the old SVID"
        time.sleep(0.1)
    assert served_serial(port, cafile) == pdp_api.svid.cert.serial_number

    authority.rotate()  # a new CA: the PDP's next SVID and the PEP's come from it
    pdp_api.rotate_svid()
    service_api.rotate_svid()
    second = pdp_api.svid.cert.serial_number
    deadline = time.monotonic() + 20
    while served_serial(port, roots_file(authority, cafile)) != second:
        assert time.monotonic() < deadline, "the listener did not take the new CA's SVID"
        time.sleep(0.1)
    caller_client = WorkloadApiClient(etl_api.address)
    caller = caller_client.fetch_jwt_svid({AUDIENCE}).token
    caller_client.close()
    assert ask(service_api).json()["decision"] == "allow"  # a PEP certificate of the new CA
