"""`pdp serve --workers 2`: two processes on one port, one decision log, one /metrics."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import POLICIES
from tests.server import run_cli, start_server


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(POLICIES, tmp_path / "policies")
    return tmp_path


def _decision_instances(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        rows = [json.loads(r[0]) for r in conn.execute("SELECT record FROM decisions")]
    counts: dict[str, int] = {}
    for r in rows:
        if r.get("kind") == "decision":
            counts[r["instance"]] = counts.get(r["instance"], 0) + 1
    return counts


def _decisions_total(metrics_text: str) -> float:
    return sum(float(m) for m in re.findall(r"^pdp_decisions_total\{[^}]*\} (\S+)$",
                                            metrics_text, re.MULTILINE))


def test_two_workers_answer_and_their_decisions_share_one_verified_chain(workdir: Path) -> None:
    server = start_server(["--dev", "--workers", "2"], cwd=workdir)
    sent = 0
    try:
        token = run_cli("token", "--spiffe-id", "spiffe://example.org/services/etl",
                        cwd=workdir).stdout.strip()
        body = {"subject": {"token": token}, "action": "read",
                "resource": {"type": "App::Dataset", "id": "sales-daily"}}

        def ask(_: int) -> str:
            # A connection per request, so that either worker may accept it.
            with httpx.Client(timeout=10) as client:
                return str(client.post(f"{server.url}/v1/authorize", json=body).json()["decision"])

        db = workdir / ".pdp" / "decisions.db"
        with ThreadPoolExecutor(8) as pool:
            for _ in range(50):  # bounded: until both workers have decided
                answers = list(pool.map(ask, range(16)))
                sent += len(answers)
                assert set(answers) == {"allow"}
                if len(_decision_instances(db)) >= 2:
                    break
        instances = _decision_instances(db)
        assert len(instances) == 2, f"one worker took every request: {instances}"
        assert sum(instances.values()) == sent
        # Whichever worker answers /metrics, it counts every worker's decisions.
        for _ in range(4):
            text = httpx.get(f"{server.url}/metrics", timeout=10).text
            assert _decisions_total(text) == sent
            assert 'pdp_bundle_info{version="' in text
    finally:
        server.stop()
    verified = run_cli("audit", "verify", cwd=workdir)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "chain intact" in verified.stdout
    assert not list((workdir / ".pdp" / "metrics").iterdir())  # its metrics files removed



@pytest.mark.parametrize("args", [["--workers", "2"], [], ["--in-process"]],
                         ids=["2-workers", "1-supervised-worker", "in-process"])
def test_a_port_that_is_taken_is_refused_before_the_banner(workdir: Path,
                                                           args: list[str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--dev", *args, "--port", str(port), cwd=workdir)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "serving bundle" not in result.stderr  # nothing claimed to serve


def test_in_process_is_one_worker_only(workdir: Path) -> None:
    result = run_cli("serve", "--dev", "--in-process", "--workers", "2", cwd=workdir)
    assert result.returncode == 1
    assert "--in-process serves with one worker only" in result.stderr


def test_one_worker_is_supervised_unless_its_state_lives_in_the_serving_process(
        tmp_path: Path) -> None:
    from pdp.cli.serve import in_process_reason
    from pdp.config import load_settings

    def settings(**overrides: object) -> Any:
        return load_settings(None, dev=True, policies=POLICIES, state_dir=tmp_path,
                             **overrides)

    assert in_process_reason(settings(), asked=False) is None  # the default
    assert in_process_reason(settings(), asked=True) == "--in-process"
    assert "tls_workload_api" in str(in_process_reason(
        settings(tls_workload_api=True), asked=False))
    assert "memory" in str(in_process_reason(settings(audit={"backend": "memory"}),
                                             asked=False))


@pytest.mark.anyio
async def test_a_serving_app_collects_young_objects_less_often_and_freezes_its_start(
        components) -> None:
    import gc

    from pdp.api.app import YOUNG_COLLECTION_EVERY
    from pdp.server import create_app

    before = gc.get_threshold()
    app = create_app(components, watch=False, freeze_gc=True)
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_threshold() == (YOUNG_COLLECTION_EVERY, *before[1:])
            assert gc.get_freeze_count() > 0
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
