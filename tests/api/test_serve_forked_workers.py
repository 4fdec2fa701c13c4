"""`pdp serve --workers 2` forks its workers after loading the bundle once (issue 16):
they serve the version the supervisor loaded, a reload replaces each of them (the
supervisor reloads: tests/api/test_serve_supervised_reload.py attacks it), and a
worker killed with SIGKILL is forked again and serves the current version.

One server for the three steps (a start costs seconds on a loaded machine). Which worker
answered is read from the decision log (``instance`` is host:pid, ``policy_version`` the
bundle); every wait is bounded by a number of requests, not by time."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import POLICIES
from tests.server import ServerProcess, run_cli, start_server

pytestmark = pytest.mark.slow


def _decisions(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        rows = [json.loads(r[0]) for r in conn.execute("SELECT record FROM decisions ORDER BY seq")]
    return [r for r in rows if r.get("kind") == "decision"]


def _versions_by_instance(records: list[dict[str, Any]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in records:
        out.setdefault(r["instance"], set()).add(json.dumps(r["policy_version"], sort_keys=True))
    return out


def _ask_until(server: ServerProcess, token: str, db: Path, done: Any, rounds: int = 60) -> None:
    """Send rounds of 16 requests, each on its own connection (so either worker may take
    it), until ``done(records)`` holds; fail after ``rounds`` rounds."""
    body = {"subject": {"token": token}, "action": "read",
            "resource": {"type": "App::Dataset", "id": "sales-daily"}}

    def ask(_: int) -> str:
        with httpx.Client(timeout=10) as client:
            return str(client.post(f"{server.url}/v1/authorize", json=body).json()["decision"])

    with ThreadPoolExecutor(8) as pool:
        for _ in range(rounds):
            assert set(pool.map(ask, range(16))) == {"allow"}
            if done(_decisions(db)):
                return
    raise AssertionError(f"not reached: {_versions_by_instance(_decisions(db))}")


def test_forked_workers_share_the_loaded_bundle_follow_a_reload_and_come_back_after_kill_9(
        tmp_path: Path) -> None:
    shutil.copytree(POLICIES, tmp_path / "policies")
    db = tmp_path / ".pdp" / "decisions.db"
    server = start_server(["--dev", "--workers", "2"], cwd=tmp_path, timeout=90)
    try:
        token = run_cli("token", "--spiffe-id", "spiffe://example.org/services/etl",
                        cwd=tmp_path).stdout.strip()
        # 1. Both workers answer, with the one version the supervisor loaded.
        _ask_until(server, token, db, lambda rs: len(_versions_by_instance(rs)) >= 2)
        first = _versions_by_instance(_decisions(db))
        assert len(first) == 2
        assert len(set().union(*first.values())) == 1, first
        old_version = next(iter(next(iter(first.values()))))

        # 2. A change to the files: the supervisor loads it and replaces both workers.
        with (tmp_path / "policies" / "datasets.cedar").open("a") as f:
            f.write("\n// issue 16: a new version, the same decisions\n")
        seen = len(_decisions(db))

        def both_reloaded(records: list[dict[str, Any]]) -> bool:
            new = _versions_by_instance(records[seen:])
            return sum(1 for vs in new.values() if vs - {old_version}) >= 2

        _ask_until(server, token, db, both_reloaded)
        new_version = next(iter(set().union(*_versions_by_instance(_decisions(db)[seen:]).values())
                                - {old_version}))

        reloaded = {i: vs for i, vs in _versions_by_instance(_decisions(db)[seen:]).items()
                    if vs == {new_version}}
        assert not _pids(reloaded) & _pids(first)  # new processes, not reloaded in place

        # 3. kill -9 of a worker: the supervisor forks another, which serves the new files.
        victim = int(next(iter(reloaded)).rsplit(":", 1)[1])
        os.kill(victim, signal.SIGKILL)
        seen = len(_decisions(db))
        known = _pids(first) | _pids(reloaded)

        def replaced(records: list[dict[str, Any]]) -> bool:
            return bool(_pids(_versions_by_instance(records[seen:])) - known)

        _ask_until(server, token, db, replaced)
        after = _versions_by_instance(_decisions(db)[seen:])
        fresh = [i for i in after if int(i.rsplit(":", 1)[1]) not in known]
        assert fresh and all(after[i] == {new_version} for i in fresh), after
        assert server.process.poll() is None  # the supervisor itself kept serving
    finally:
        server.stop()
    assert "died (exit -9); restarting" in server.log.read_text()
    verified = run_cli("audit", "verify", cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _pids(instances: dict[str, set[str]]) -> set[int]:
    return {int(i.rsplit(":", 1)[1]) for i in instances}
