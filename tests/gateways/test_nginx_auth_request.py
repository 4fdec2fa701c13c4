"""The real nginx in front of a small upstream, asking the real PDP through auth_request.

nginx (the Debian package) is installed when missing and the tests run as
root with apt-get; otherwise the test is skipped, or fails under
PDP_REQUIRE_SERVICES=1. Everything listens on loopback ports picked at random.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.conftest import POLICIES
from tests.server import ServerProcess, free_port, run_cli, start_server

ETL = "spiffe://example.org/services/etl"

# The PDP runs as `make run` runs it (`pdp serve --dev`) plus the one line the guide adds:
# nginx's address in `trusted_proxies` (the record names the door `nginx@127.0.0.1`). No
# [[routes]]: the development defaults include the guide's table
# (pdp/gateway/example_routes.py), so the guide's nginx configuration works as written.
PDP_CONFIG = """
trusted_proxies = ["127.0.0.1"]
"""

# The configuration docs/integrations.md shows, with test paths and ports filled in.
NGINX_CONFIG = """
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}

http {{
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;

    log_format pdp '$remote_addr "$request" $status decision=$pdp_decision';
    access_log {prefix}/access.log pdp;

    server {{
        listen 127.0.0.1:{port};

        location / {{
            auth_request /_pdp;
            auth_request_set $pdp_decision $upstream_http_x_pdp_decision_id;
            add_header X-PDP-Decision-Id $pdp_decision always;
            proxy_set_header X-PDP-Decision-Id $pdp_decision;
            proxy_pass http://127.0.0.1:{upstream};
        }}

        location = /_pdp {{
            internal;
            proxy_pass http://127.0.0.1:{pdp}/v1/gateway/nginx;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Request-ID $request_id;
        }}
    }}
}}
"""


def nginx_binary() -> str:
    """The nginx executable, installing the Debian package when it is missing."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found:
        return found
    problem = "nginx is not installed"
    apt = shutil.which("apt-get")
    if apt and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        update = subprocess.run([apt, "update", "-qq"], capture_output=True, text=True,
                                env=env, timeout=300)
        install = subprocess.run([apt, "install", "-y", "-qq", "nginx"], capture_output=True,
                                 text=True, env=env, timeout=600)
        found = shutil.which("nginx") or (
            "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if found:
            return found
        problem += (f" and `apt-get install nginx` failed: "
                    f"{(update.stderr + install.stderr).strip()[-300:]}")
    else:
        problem += " (installing it needs root and apt-get)"
    if os.environ.get("PDP_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{problem}; PDP_REQUIRE_SERVICES=1 requires it")
    pytest.skip(f"{problem}; install nginx to run this test")


@dataclass
class Upstream:
    """A tiny HTTP server on loopback that records what reached it."""

    server: ThreadingHTTPServer
    seen: list[dict[str, str]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append({"method": self.command, "path": self.path,
                         **{k.lower(): v for k, v in self.headers.items()}})
            body = b"upstream ok\n"
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Upstream(server, seen)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def pdp(tmp_path: Path) -> Iterator[ServerProcess]:
    shutil.copytree(POLICIES, tmp_path / "policies")
    (tmp_path / "pdp.toml").write_text(PDP_CONFIG)
    server = start_server(["--dev", "--config", "pdp.toml"], cwd=tmp_path)
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Nginx:
    process: subprocess.Popen[bytes]
    prefix: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access_log(self) -> str:
        path = self.prefix / "access.log"
        return path.read_text() if path.exists() else ""


@pytest.fixture
def nginx(tmp_path: Path, pdp: ServerProcess, upstream: Upstream) -> Iterator[Nginx]:
    binary = nginx_binary()
    prefix = tmp_path / "nginx"
    (prefix / "tmp").mkdir(parents=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONFIG.format(
        user="user root root;" if os.geteuid() == 0 else "", prefix=prefix, port=port,
        upstream=upstream.port, pdp=pdp.port))
    process = subprocess.Popen([binary, "-p", str(prefix), "-e", str(prefix / "error.log"),
                                "-c", str(conf), "-g", "daemon off;"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    running = Nginx(process, prefix, port)
    try:
        _wait_for_port(port, process, prefix)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)  # graceful stop of the master we started
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], prefix: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (prefix / "error.log").read_text() if (prefix / "error.log").exists() else ""
            output = process.stdout.read().decode() if process.stdout else ""
            raise RuntimeError(f"nginx exited early:\n{output}\n{log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nginx did not start listening")


def _mint(workdir: Path, spiffe_id: str = ETL) -> str:
    from pdp.identity.dev_issuer import DevIssuer

    return DevIssuer.load_or_create(workdir / ".pdp").mint(spiffe_id)


def test_nginx_lets_an_allowed_request_reach_the_upstream_and_stops_a_denied_one(
        nginx: Nginx, upstream: Upstream, pdp: ServerProcess, tmp_path: Path) -> None:
    token = _mint(tmp_path)
    auth = {"authorization": f"Bearer {token}"}

    allowed = httpx.get(f"{nginx.url}/datasets/sales-daily?day=2026-01-05", headers=auth)
    assert allowed.status_code == 200 and allowed.text == "upstream ok\n"
    decision_id = allowed.headers["x-pdp-decision-id"]
    assert decision_id
    assert [s["path"] for s in upstream.seen] == ["/datasets/sales-daily?day=2026-01-05"]
    assert upstream.seen[0]["x-pdp-decision-id"] == decision_id

    denied = httpx.put(f"{nginx.url}/datasets/ledger", headers=auth, content=b"[]")
    assert denied.status_code == 403
    denied_id = denied.headers["x-pdp-decision-id"]
    assert denied_id and denied_id != decision_id
    no_route = httpx.delete(f"{nginx.url}/datasets/ledger", headers=auth)
    anonymous = httpx.get(f"{nginx.url}/datasets/sales-daily")
    assert no_route.status_code == 403 and anonymous.status_code == 403
    assert len(upstream.seen) == 1  # nothing denied reached the upstream

    log = nginx.access_log()
    assert f'"GET /datasets/sales-daily?day=2026-01-05 HTTP/1.1" 200 decision={decision_id}' in log
    assert f'"PUT /datasets/ledger HTTP/1.1" 403 decision={denied_id}' in log

    pdp.stop()
    tail = run_cli("audit", "tail", "-n", "20", "--json", cwd=tmp_path)
    assert tail.returncode == 0, tail.stderr
    assert decision_id in tail.stdout and denied_id in tail.stdout
    records = [json.loads(line) for line in tail.stdout.splitlines() if line.startswith("{")]
    by_id = {r.get("decision_id"): r for r in records}
    assert by_id[decision_id]["decision"] == "allow"
    assert by_id[decision_id]["pep"] == "nginx@127.0.0.1"
    assert by_id[decision_id]["request_id"]  # nginx's $request_id, recorded
    assert by_id[denied_id]["decision"] == "deny"
