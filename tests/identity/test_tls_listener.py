"""`pdp serve --tls-cert --tls-key --client-ca-bundle`: the PEP is authenticated by its
X.509-SVID on the PDP's own TLS listener (a real server, real handshakes)."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.identity.workloads import POLICIES, TrustDomain, authorize_body
from tests.server import free_port


@dataclass
class TlsServer:
    url: str
    ca_file: Path
    workdir: Path
    td: TrustDomain

    def client(self, svid_path: str | None = None, *, td: TrustDomain | None = None) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if svid_path is not None:
            name = svid_path.strip("/").replace("/", "-")
            cert, key = (td or self.td).svid(svid_path).write(self.workdir, f"client-{name}")
            context.load_cert_chain(cert, key)
        return httpx.Client(base_url=self.url, verify=context, timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    workdir = tmp_path_factory.mktemp("tls")
    td = TrustDomain("example.org")
    cert, key = td.svid("/pdp", server_ip="127.0.0.1").write(workdir, "server")
    ca_file = workdir / "ca.pem"
    ca_file.write_text(td.root.chain_pem)
    bundle = td.write_bundle(workdir)
    (workdir / "pdp.toml").write_text(f"""
policies = "{POLICIES}"
state_dir = "{workdir / 'state'}"
pep_allowlist = ["spiffe://example.org/peps/*"]
watch_policies = false

[[trust_domains]]
name = "example.org"
bundle_file = "{bundle}"

[live.business_hours]
start = "00:00"
end = "23:59:59"
days = [0, 1, 2, 3, 4, 5, 6]
""")
    port = free_port()
    log = workdir / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "pdp.cli.main", "serve", "--config", str(workdir / "pdp.toml"),
         "--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key),
         "--client-ca-bundle", str(ca_file)],
        cwd=workdir, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=dict(os.environ))
    running = TlsServer(f"https://127.0.0.1:{port}", ca_file, workdir, td)
    try:
        _wait_healthy(running, process, log)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_healthy(server: TlsServer, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pdp serve exited:\n{log.read_text()}")
        try:
            with server.client() as client:
                if client.get("/healthz").status_code == 200:
                    return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"pdp serve did not become healthy:\n{log.read_text()}")


def test_a_pep_with_a_listed_svid_is_answered_and_recorded(server: TlsServer) -> None:
    with server.client("/peps/envoy") as pep:
        r = pep.post("/v1/authorize", json=authorize_body(server.td.jwt_svid("/services/etl")))
    assert r.status_code == 200 and r.json()["decision"] == "allow"
    auditor = {"authorization": f"Bearer {server.td.jwt_svid('/audit/auditor')}"}
    with server.client("/peps/envoy") as pep:
        record = pep.get(f"/v1/decisions/{r.json()['decision_id']}", headers=auditor).json()
    assert record["pep"] == "spiffe://example.org/peps/envoy"


def test_a_tls_client_without_a_certificate_is_401(server: TlsServer) -> None:
    with server.client() as anonymous:
        r = anonymous.post("/v1/authorize",
                           json=authorize_body(server.td.jwt_svid("/services/etl")))
    assert r.status_code == 401 and r.json()["reason_codes"] == ["identity.missing"]


def test_a_tls_client_not_on_the_allowlist_is_403(server: TlsServer) -> None:
    with server.client("/services/etl") as workload:
        r = workload.post("/v1/authorize",
                          json=authorize_body(server.td.jwt_svid("/services/etl")))
    assert r.status_code == 403
    assert "spiffe://example.org/services/etl" in r.json()["detail"]


def test_a_client_certificate_from_another_ca_fails_the_handshake(server: TlsServer) -> None:
    with pytest.raises(httpx.HTTPError):
        with server.client("/peps/envoy", td=TrustDomain("example.org")) as stranger:
            stranger.get("/healthz")
