"""Acknowledged means recorded: SIGKILL a loaded `pdp serve`, restart it, find every answer.

Eight clients send decisions to a real server as fast as it answers; the
test keeps the decision_id of every response it received, kills the server
with SIGKILL in the middle of the load (no shutdown, no flush), starts it
again on the same state, and checks that every acknowledged decision is in
the log and that the log verifies. Once with SQLite, once with PostgreSQL,
and once with SQLite locked by another process during the load, so that the
acknowledged records sit in the spool when the server dies; each with the default
server (a supervisor and one worker: both are killed at once), with two workers appending
to one log, and with ``--in-process``.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from pdp.audit.chain.checkpoint import checkpoint_public_key
from pdp.audit.chain.verify import verify_log
from pdp.audit.factory import open_configured_log
from pdp.config import load_settings
from pdp.identity.dev_issuer import DevIssuer
from tests.audit.pgschema import postgres_schema, require_postgres
from tests.conftest import POLICIES
from tests.server import ServerProcess, children, start_server

pytestmark = pytest.mark.slow

CLIENTS = 8
LOAD_S = 1.5


def load_until_killed(server: ServerProcess, tokens: list[str],
                      during: Any = None) -> set[str]:
    """Run CLIENTS clients, SIGKILL the server after LOAD_S seconds; the acknowledged ids."""
    acknowledged: set[str] = set()
    refused: list[dict[str, Any]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(token: str) -> None:
        body = {"subject": {"token": token}, "action": "read",
                "resource": {"type": "App::Dataset", "id": "sales-daily"}}
        with httpx.Client(base_url=server.url, timeout=10) as c:
            while not stop.is_set():
                try:
                    r = c.post("/v1/authorize", json=body)
                except httpx.HTTPError:
                    return  # the server is gone
                d = r.json()
                with lock:
                    if "audit.unavailable" in d.get("reason_codes", []):
                        refused.append(d)
                    else:
                        acknowledged.add(d["decision_id"])

    threads = [threading.Thread(target=client, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    if during is not None:
        during()
    time.sleep(LOAD_S)
    server.kill_9()  # mid-load, every process of the server: no shutdown of any kind
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not refused, f"decisions refused during the load: {refused[:1]}"
    return acknowledged


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(POLICIES, tmp_path / "policies")
    return tmp_path


@pytest.fixture(params=["sqlite", "postgres", "sqlite-spool"])
def backend_env(request: pytest.FixtureRequest, workdir: Path) -> Iterator[dict[str, str]]:
    if request.param == "postgres":
        require_postgres()
        with postgres_schema("pdp_test_kill") as dsn:
            yield {"PDP_AUDIT__BACKEND": "postgres", "PDP_AUDIT__POSTGRES_DSN": dsn}
        return
    env = {"PDP_AUDIT__BACKEND": "sqlite"}
    if request.param == "sqlite-spool":
        env.update(PDP_AUDIT__SPOOL_PATH=str(workdir / ".pdp" / "spool.jsonl"),
                   PDP_AUDIT__BUSY_TIMEOUT_MS="50")
    yield env


@pytest.mark.parametrize("serve_args", [[], ["--in-process"], ["--workers", "2"]],
                         ids=["supervised", "in-process", "two-workers"])
def test_every_acknowledged_decision_survives_sigkill(workdir: Path,
                                                      backend_env: dict[str, str],
                                                      serve_args: list[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    spooled = "PDP_AUDIT__SPOOL_PATH" in backend_env
    with ExitStack() as stack:
        server = start_server(["--dev", *serve_args], cwd=workdir, env=backend_env)
        stack.callback(server.stop)
        # The default serves from a worker; --in-process from the process itself; with two
        # workers both append to one log (SQLite: taking turns at the file).
        workers = 0 if "--in-process" in serve_args else 2 if "--workers" in serve_args else 1
        assert len(children(server.process.pid)) == workers
        issuer = DevIssuer.load_or_create(workdir / ".pdp")  # the server's dev issuer
        tokens = [issuer.mint("spiffe://example.org/services/etl", ttl_s=600)
                  for _ in range(CLIENTS)]

        blocker: list[sqlite3.Connection] = []

        def lock_the_database() -> None:  # another process holds SQLite's write lock
            time.sleep(LOAD_S / 3)
            conn = sqlite3.connect(workdir / ".pdp" / "decisions.db", isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            blocker.append(conn)

        acknowledged = load_until_killed(server, tokens,
                                         during=lock_the_database if spooled else None)
        for conn in blocker:
            with closing(conn):
                conn.execute("ROLLBACK")
        assert len(acknowledged) > 20, "the load did not get going"
        if spooled:
            spool = workdir / ".pdp" / "spool.jsonl"
            assert spool.stat().st_size > 0, "nothing was spooled while the store was locked"

        # Restart on the same state: it recovers (and ships the spool) before serving.
        again = start_server(["--dev", *serve_args], cwd=workdir, env=backend_env)
        stack.callback(again.stop)
        after = httpx.post(f"{again.url}/v1/authorize", json={
            "subject": {"token": tokens[0]}, "action": "read",
            "resource": {"type": "App::Dataset", "id": "sales-daily"}}).json()
        again.stop()  # a clean stop: signs the final head

    for name, value in backend_env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(None, dev=True, state_dir=workdir / ".pdp")
    log = open_configured_log(settings)
    try:
        if spooled:
            deadline = time.monotonic() + 20
            while log.spooling and time.monotonic() < deadline:  # type: ignore[attr-defined]
                time.sleep(0.05)
        stored = {r["decision_id"] for r in log.iter_all()}
        missing = acknowledged - stored
        assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged decisions lost"
        assert after["decision_id"] in stored
        report = verify_log(log, public_key=checkpoint_public_key(settings))
        assert report.ok, report.as_dict()
        assert report.signatures == "signed" and report.checkpoint is not None
    finally:
        log.close()
