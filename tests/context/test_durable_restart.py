"""Nothing an administrator set is lost to a restart: real `pdp serve` processes, `kill -9`.

For every combination of live context {in process, Redis} and decision log
{SQLite, PostgreSQL}: revoke a workload, declare an incident, raise a
principal's risk, create a task grant and revoke another; `kill -9` the
server (and, with Redis, kill Redis and bring it back *empty*); start it again
on the same state directory and log: every one of them still applies. Then
the Redis outages: a PDP started while Redis is down, and a Redis that comes
back empty under a running PDP (its state is reseeded from the durable store).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from pdp.identity.dev_issuer import DevIssuer
from tests.audit.pgschema import postgres_schema, require_postgres
from tests.conftest import POLICIES
from tests.context.redis_server import RedisServer, require_redis_server
from tests.server import ServerProcess, start_server

pytestmark = [pytest.mark.services, pytest.mark.slow]

ETL = "spiffe://example.org/services/etl"
ADMIN_CONSOLE = "spiffe://example.org/services/admin-console"
RESPONDER = "spiffe://example.org/oncall/responder"
SRE = "spiffe://example.org/ops/sre-console"


class Pdp:
    """One `pdp serve --dev` in ``workdir`` (its state directory survives restarts)."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir, self.env = workdir, env
        shutil.copytree(POLICIES, workdir / "policies")
        self.issuer = DevIssuer.load_or_create(workdir / ".pdp")
        self.http = httpx.Client(timeout=10)
        self.server: ServerProcess | None = None

    def start(self) -> Pdp:
        self.server = start_server(["--dev"], cwd=self.workdir, env=self.env)
        return self

    def kill9(self) -> None:
        assert self.server is not None
        self.server.kill_9()  # the supervisor and its worker, at once

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.http.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def decide(self, who: str, action: str, dataset: str) -> dict[str, Any]:
        r = self.http.post(f"{self.url}/v1/authorize", json={
            "subject": {"token": self.issuer.mint(who, ttl_s=280)}, "action": action,
            "resource": {"type": "App::Dataset", "id": dataset}})
        assert r.status_code == 200, r.text
        return r.json()

    def admin(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, f"{self.url}{path}", **kw, headers={
            "authorization": f"Bearer {self.issuer.mint(SRE, ttl_s=280)}"})

    def ready(self) -> httpx.Response:
        return self.http.get(f"{self.url}/readyz")


def set_everything(pdp: Pdp) -> None:
    """Revoke ETL, declare INC-7 on finance data, raise the admin console's risk, grant the
    responder read on the ledger, and create then revoke a write grant."""
    for method, path, body in [
        ("POST", "/v1/revocations", {"kind": "spiffe_id", "value": ETL, "reason": "stolen"}),
        ("POST", "/v1/context/incidents", {"scope": "resource_tag:finance", "level": "major",
                                           "reason": "ledger tampering", "id": "INC-7"}),
        ("PUT", "/v1/context/risk", {"principal": ADMIN_CONSOLE, "level": "high",
                                     "reason": "odd hours"}),
        ("POST", "/v1/grants", {"template": "grant.dataset.read", "principal": RESPONDER,
                                "resource": {"type": "App::Dataset", "id": "ledger"},
                                "ttl_s": 3600, "task": "T-1"}),
    ]:
        r = pdp.admin(method, path, json=body)
        assert r.status_code in (200, 201), r.text
    write = pdp.admin("POST", "/v1/grants", json={
        "template": "grant.dataset.write", "principal": RESPONDER,
        "resource": {"type": "App::Dataset", "id": "ledger"}, "ttl_s": 3600, "task": "T-2"})
    assert write.status_code == 201, write.text
    assert pdp.admin("DELETE", f"/v1/grants/{write.json()['id']}").status_code == 200


def assert_everything_applies(pdp: Pdp) -> None:
    revoked = pdp.decide(ETL, "read", "sales-daily")
    assert revoked["decision"] == "deny" and revoked["reason_codes"] == ["identity.revoked"], revoked
    console = pdp.decide(ADMIN_CONSOLE, "delete", "ledger")
    assert console["decision"] == "deny"
    assert [i["id"] for i in console["context"]["incidents"]] == ["INC-7"]
    assert console["context"]["principal_risk_level"] == 2
    assert {r["policy"] for r in console["reasons"]} >= {"guard.incident.sensitive-writes",
                                                         "guard.risk.elevated"}
    assert pdp.decide(RESPONDER, "read", "ledger")["decision"] == "allow"      # the grant
    assert pdp.decide(RESPONDER, "write", "ledger")["decision"] == "deny"      # revoked grant


def assert_nothing_set(pdp: Pdp) -> None:
    assert pdp.decide(ETL, "read", "sales-daily")["decision"] == "allow"
    assert pdp.decide(ADMIN_CONSOLE, "delete", "ledger")["decision"] == "allow"
    assert pdp.decide(RESPONDER, "read", "ledger")["decision"] == "deny"


def empty_restart(server: RedisServer) -> None:
    """Kill Redis and bring it back on the same port with nothing: no append-only file."""
    server.kill()
    for path in server.directory.iterdir():
        if path.name != "redis.log":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    server.start()


def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


def backends(stack: ExitStack, tmp_path: Path, context: str, log: str
             ) -> tuple[dict[str, str], RedisServer | None]:
    env: dict[str, str] = {}
    redis_server = None
    if context == "redis":
        redis_server = RedisServer(require_redis_server(), tmp_path / "redis").start()
        stack.callback(redis_server.kill)
        env |= {"PDP_CONTEXT__BACKEND": "redis", "PDP_CONTEXT__REDIS_URL": redis_server.url,
                "PDP_CONTEXT__RESYNC_S": "0.2"}
    if log == "postgres":
        require_postgres()
        dsn = stack.enter_context(postgres_schema())
        env |= {"PDP_AUDIT__BACKEND": "postgres", "PDP_AUDIT__POSTGRES_DSN": dsn}
    return env, redis_server


@pytest.mark.parametrize("log", ["sqlite", "postgres"])
@pytest.mark.parametrize("context", ["memory", "redis"])
def test_revocation_incident_risk_and_grants_survive_kill_9(
        tmp_path: Path, stack: ExitStack, context: str, log: str) -> None:
    env, redis_server = backends(stack, tmp_path, context, log)
    pdp = Pdp(tmp_path / "pdp", env).start()
    stack.callback(pdp.stop)
    assert_nothing_set(pdp)
    set_everything(pdp)
    assert_everything_applies(pdp)

    pdp.kill9()
    if redis_server is not None:
        empty_restart(redis_server)  # both lose their memory
    pdp.start()
    assert_everything_applies(pdp)
    assert pdp.ready().status_code == 200


@pytest.mark.parametrize("log", ["sqlite", "postgres"])
def test_a_pdp_started_while_redis_is_down_still_refuses_the_revoked_workload(
        tmp_path: Path, stack: ExitStack, log: str) -> None:
    env, redis_server = backends(stack, tmp_path, "redis", log)
    assert redis_server is not None
    # The durable copy is confirmed by its own store, not by Redis: a Redis outage longer
    # than the revocations' maximum age leaves them known.
    pdp = Pdp(tmp_path / "pdp", env | {"PDP_CONTEXT__MAX_AGE__REVOCATIONS_S": "0.5"}).start()
    stack.callback(pdp.stop)
    set_everything(pdp)
    pdp.kill9()
    redis_server.kill()

    pdp.start()  # Redis unreachable: the durable copy still decides
    time.sleep(1.0)  # past the maximum age, with no Redis at all
    ready = pdp.ready().json()
    assert ready["revocations"]["known"] is True and ready["context"]["reachable"] is False
    d = pdp.decide(ETL, "read", "sales-daily")
    assert d["decision"] == "deny" and d["reason_codes"] == ["identity.revoked"], d
    console = pdp.decide(ADMIN_CONSOLE, "read", "ledger")
    assert [i["id"] for i in console["context"]["incidents"]] == ["INC-7"]
    assert pdp.decide(RESPONDER, "read", "ledger")["decision"] == "allow"

    redis_server.start()  # back, with its own (append-only) copy: nothing changes
    until(lambda: pdp.ready().json()["context"]["reachable"] is True)
    assert_everything_applies(pdp)


def test_a_redis_restarted_empty_is_reseeded_and_nothing_is_forgotten(
        tmp_path: Path, stack: ExitStack) -> None:
    env, redis_server = backends(stack, tmp_path, "redis", "sqlite")
    assert redis_server is not None
    pdp = Pdp(tmp_path / "pdp", env).start()
    stack.callback(pdp.stop)
    set_everything(pdp)

    empty_restart(redis_server)
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    stack.callback(client.close)

    def reseeded() -> bool:
        return (client.hexists("pdp:context:state", "incident:INC-7")
                and len(client.hvals("pdp:revocations")) == 1)

    until(reseeded)
    assert ETL in client.hvals("pdp:revocations")[0]
    assert_everything_applies(pdp)
    assert pdp.ready().status_code == 200
