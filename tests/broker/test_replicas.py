"""Two real `pdp serve --dev` replicas sharing one private Redis: a task completed through
one replica (with `pdp task complete`) kills its credentials on both.

Each replica has its own working directory and SQLite log; they share the dev issuer's
and the broker's keys (so a credential issued by one verifies on the other) and a
redis-server this test starts on a free port. The machine's shared Redis is never touched.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pdp.broker.keys import DEV_KEY_FILE, create_key_file
from pdp.identity.dev_issuer import KEY_FILE, DevIssuer
from tests.broker.conftest import GRANT, JWT_TYPE, PLANNER, REPORTS, task_details
from tests.conftest import POLICIES
from tests.context.redis_server import RedisServer, require_redis_server
from tests.server import ServerProcess, run_cli, start_server

pytestmark = [pytest.mark.services, pytest.mark.slow]
SRE = "spiffe://example.org/ops/sre-console"
PROPAGATION_BOUND_S = 2.0  # generous on a shared 2-core machine; the time taken is printed


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(require_redis_server(), tmp_path / "redis").start()
    yield server
    server.kill()


@pytest.fixture
def replicas(tmp_path: Path, redis_server: RedisServer
             ) -> Iterator[tuple[ServerProcess, ServerProcess, DevIssuer, Path]]:
    workdirs = []
    for name in ("a", "b"):
        shutil.copytree(POLICIES, tmp_path / name / "policies")
        workdirs.append(tmp_path / name)
    issuer = DevIssuer.load_or_create(workdirs[0] / ".pdp")
    create_key_file(workdirs[0] / ".pdp" / DEV_KEY_FILE)
    for key in (KEY_FILE, DEV_KEY_FILE):  # the same keys on both replicas (mode 0600 kept)
        (workdirs[1] / ".pdp" / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(workdirs[0] / ".pdp" / key, workdirs[1] / ".pdp" / key)
    env = {"PDP_CONTEXT__BACKEND": "redis", "PDP_CONTEXT__REDIS_URL": redis_server.url,
           "PDP_CONTEXT__RESYNC_S": "0.2",
           # Agents act only in business hours (policies/guards.cedar): make it always.
           "PDP_LIVE__BUSINESS_HOURS__DAYS": "[0,1,2,3,4,5,6]",
           "PDP_LIVE__BUSINESS_HOURS__START": "00:00",
           "PDP_LIVE__BUSINESS_HOURS__END": "23:59:59.999999"}
    servers: list[ServerProcess] = []
    try:
        for workdir in workdirs:
            servers.append(start_server(["--dev"], cwd=workdir, env=env))
        yield servers[0], servers[1], issuer, workdirs[0]
    finally:
        for server in servers:
            server.stop()


def _reason_codes(http: httpx.Client, server: ServerProcess, token: str) -> list[str]:
    r = http.post(f"{server.url}/v1/authorize", json={
        "subject": {"token": token}, "action": "read",
        "resource": {"type": "App::Dataset", "id": "sales-daily"}})
    assert r.status_code == 200, r.text
    codes: list[str] = r.json()["reason_codes"]
    return codes


def test_a_task_completed_on_one_replica_is_refused_by_both(replicas) -> None:
    a, b, issuer, workdir = replicas
    http = httpx.Client(timeout=10)
    r = http.post(f"{a.url}/v1/token", data={
        "grant_type": GRANT, "subject_token": issuer.mint(PLANNER, ttl_s=600),
        "subject_token_type": JWT_TYPE, "audience": REPORTS, "scope": "reports:read",
        "authorization_details": task_details("T-rep", "replicated")})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    for server in (a, b):  # issued by a, trusted by both
        assert "identity.revoked" not in _reason_codes(http, server, token)
        assert "identity.unknown_key" not in _reason_codes(http, server, token)

    listing = run_cli("task", "list", "--json", "--url", a.url,
                      "--token", issuer.mint(SRE, ttl_s=60), cwd=workdir)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    [task] = json.loads(listing.stdout)
    assert task["id"] == "T-rep" and len(task["credentials"]) == 1

    done = run_cli("task", "complete", "T-rep", "--url", a.url,
                   "--token", issuer.mint(PLANNER, ttl_s=60), cwd=workdir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 credential(s) revoked" in done.stdout
    assert _reason_codes(http, a, token) == ["identity.revoked"]
    started = time.perf_counter()
    while _reason_codes(http, b, token) != ["identity.revoked"]:
        assert time.perf_counter() - started < PROPAGATION_BOUND_S, "b still accepts it"
        time.sleep(0.01)
    print(f"replica b refused the completed task's credential after "
          f"{(time.perf_counter() - started) * 1000:.1f} ms")
    http.close()
