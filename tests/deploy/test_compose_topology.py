"""compose.yaml's topology for real, without Docker: its nginx.conf in front of two
`pdp serve` replicas started with its pdp.toml and environment, on the real PostgreSQL
(one decision log) and Redis (live context).

Only what a Docker network provides is replaced: the replicas' and services' host names
by loopback addresses and free ports, container paths by the checkout's, and the
PostgreSQL DSN by a schema of the test server's own (dropped afterwards). nginx is the
Debian package (installed when missing as root; else skipped, failed in CI).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from tests.audit.pgschema import postgres_schema, require_postgres
from tests.conftest import POLICIES, REPO, require_service
from tests.gateways.test_nginx_auth_request import nginx_binary
from tests.server import free_port

pytestmark = pytest.mark.slow

COMPOSE_DIR = REPO / "deploy" / "compose"


def replica_config(tmp_path: Path, name: str, redis_prefix: str) -> tuple[Path, dict[str, str]]:
    """The compose pdp.toml with container paths and host names made local."""
    text = (COMPOSE_DIR / "pdp.toml").read_text()
    replaced = {'"/etc/pdp/policies"': json.dumps(str(POLICIES)),
                '"/var/lib/pdp"': json.dumps(str(tmp_path / name)),
                "redis://redis:6379/0": "redis://127.0.0.1:6379/0"}
    for old, new in replaced.items():
        assert text.count(old) == 1, f"compose pdp.toml changed: {old} not found once"
        text = text.replace(old, new)
    # A prefix of its own: other tests' replicas on the same Redis must not be seen.
    text = text.replace('[context]\n', f'[context]\nredis_prefix = "{redis_prefix}"\n')
    path = tmp_path / f"{name}-{redis_prefix}.toml"
    path.write_text(text)
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    env = {k: str(v) for k, v in compose["services"][name]["environment"].items()}
    return path, env


def start_replica(tmp_path: Path, name: str, config: Path, env: dict[str, str]
                  ) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    log = tmp_path / f"{name}.log"
    command = yaml.safe_load((REPO / "compose.yaml").read_text())["services"][name]["command"]
    assert command[:2] == ["pdp", "serve"]
    args = [str(config) if a == "/etc/pdp/pdp.toml" else a for a in command[2:]]
    process = subprocess.Popen(
        [sys.executable, "-m", "pdp.cli.main", "serve", *args],
        cwd=tmp_path, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("PDP_")}, **env,
             "PDP_HOST": "127.0.0.1", "PDP_PORT": str(port)})
    return process, port, log


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"not ready:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[dict[str, object]]:
    binary = nginx_binary()
    require_postgres()
    require_service("Redis", "127.0.0.1", 6379)
    prefix = f"pdp_compose_{os.getpid()}_{time.monotonic_ns()}"
    processes: list[subprocess.Popen[bytes]] = []
    nginx: subprocess.Popen[bytes] | None = None
    with postgres_schema("pdp_compose") as dsn:
        try:
            replicas = {}
            for name in ("pdp-1", "pdp-2"):
                config, env = replica_config(tmp_path, name, prefix)
                assert "PDP_AUDIT__POSTGRES_DSN" in env
                env["PDP_AUDIT__POSTGRES_DSN"] = dsn  # the test server's schema, not `postgres`
                process, port, log = start_replica(tmp_path, name, config, env)
                processes.append(process)
                replicas[name] = (process, port, log)
            for process, port, log in replicas.values():
                wait_ready(f"http://127.0.0.1:{port}", process, log)
            text = (COMPOSE_DIR / "nginx.conf").read_text()
            for name, (_, port, _) in replicas.items():
                assert text.count(f"server {name}:8181") == 1
                text = text.replace(f"server {name}:8181", f"server 127.0.0.1:{port}")
            listen = free_port()
            assert text.count("listen 8181;") == 1
            text = text.replace("listen 8181;", f"listen 127.0.0.1:{listen};")
            nginx_dir = tmp_path / "nginx"
            nginx_dir.mkdir()
            (nginx_dir / "nginx.conf").write_text(text)
            nginx_log = tmp_path / "nginx.log"
            nginx = subprocess.Popen(
                [binary, "-p", str(nginx_dir), "-c", str(nginx_dir / "nginx.conf"),
                 "-g", f"daemon off; pid {nginx_dir}/nginx.pid;"],
                stdout=nginx_log.open("wb"), stderr=subprocess.STDOUT)
            url = f"http://127.0.0.1:{listen}"
            wait_ready(url, nginx, nginx_log)
            yield {"url": url, "replicas": replicas, "dsn": dsn, "tmp": tmp_path}
        finally:
            if nginx is not None:
                stop(nginx, signal.SIGQUIT)  # graceful stop of the master we started
            for process in processes:
                stop(process)


def request_lines(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()
            if line.startswith('{"event": "request"')]


def test_nginx_spreads_decisions_over_both_replicas_into_one_log_and_skips_a_lost_one(
        topology) -> None:
    url = str(topology["url"])
    body = {"subject": {"token": "not-a-jwt"}, "action": "read",
            "resource": {"type": "App::Dataset", "id": "sales-daily"}}
    answers = [httpx.post(f"{url}/v1/authorize", json=body,
                          headers={"x-request-id": f"compose-{i}"}, timeout=10)
               for i in range(12)]
    # The compose config admits only allowlisted PEPs: an anonymous caller is refused
    # (401), and the refusal is a decision recorded in the shared log.
    assert {a.status_code for a in answers} == {401}
    replicas = topology["replicas"]
    assert isinstance(replicas, dict)
    expected = {f"compose-{i}" for i in range(12)}
    deadline = time.monotonic() + 20  # a line is written just after its answer is sent
    while True:
        served = {name: [r for r in request_lines(log) if r["path"] == "/v1/authorize"]
                  for name, (_, _, log) in replicas.items()}
        ids = {str(r["request_id"]) for lines in served.values() for r in lines}
        if ids == expected or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert ids == expected
    assert all(served.values()), f"one replica got nothing: {served}"
    with psycopg.connect(str(topology["dsn"])) as conn:
        row = conn.execute("SELECT count(*) FROM decisions").fetchone()
    assert row is not None and row[0] >= 12  # both replicas wrote to the one chain
    # ...and it verifies end to end, as an auditor would check it with the compose config.
    config, env = replica_config(Path(str(topology["tmp"])), "pdp-1", "unused")
    env["PDP_AUDIT__POSTGRES_DSN"] = str(topology["dsn"])
    verify = subprocess.run(
        [sys.executable, "-m", "pdp.cli.main", "audit", "verify", "--config", str(config)],
        capture_output=True, text=True, timeout=120,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("PDP_")}, **env})
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # A replica that goes away is skipped: nginx retries the connection on the other one.
    process, _, _ = replicas["pdp-1"]
    stop(process)
    answers = [httpx.get(f"{url}/readyz", timeout=10).status_code for _ in range(6)]
    assert answers == [200] * 6
