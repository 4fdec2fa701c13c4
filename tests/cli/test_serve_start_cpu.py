"""What a first ``pdp serve`` start spends CPU on before ``/readyz``, and what it no longer
does (bench/RESULTS.md, "Issue 16, round 11: start"):

- a served worker (a real ``pdp serve --dev``: a supervisor and its one worker, forked
  from it after its imports) holds the serve command's modules at ``/readyz`` and none of
  the other commands' (``pdp.cli.main`` imports a command's module when that command
  runs: :mod:`pdp.cli.lazy_group`), with the cyclic collector back on;
- ``serve`` imports with the collector off and freezes the imports before it is back on
  (:mod:`pdp.collector`);
- from the first load to its freeze no collection walks the load's objects but the
  freeze's own.

The worker writes its ``sys.modules`` on SIGUSR1, a handler installed before ``pdp``
starts (the worker inherits it through the fork) by the small launcher below."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.conftest import POLICIES, REPO
from tests.server import children, free_port

OTHER_COMMANDS = ("pdp.cli.audit", "pdp.cli.bundle", "pdp.cli.check", "pdp.cli.config_cmd",
                  "pdp.cli.context", "pdp.cli.grant", "pdp.cli.impact", "pdp.cli.revoke",
                  "pdp.cli.scaffold", "pdp.cli.task", "pdp.cli.token", "pdp.cli.admin_client")

LAUNCHER = """
import gc, json, os, runpy, signal, sys
out = sys.argv.pop(1)
def dump(signum, frame):
    path = os.path.join(out, f"{os.getpid()}.json")
    with open(path + ".part", "w") as f:
        json.dump({"modules": sorted(sys.modules), "collecting": gc.isenabled()}, f)
    os.replace(path + ".part", path)  # whole once it is there
signal.signal(signal.SIGUSR1, dump)
sys.argv[0] = "pdp"
runpy.run_module("pdp.cli.main", run_name="__main__", alter_sys=True)
"""


def modules_at_ready(tmp_path: Path) -> dict[str, dict[str, object]]:
    """``{"supervisor": ..., "worker": ...}``: each one's modules and collector state, read
    right after the first 200 from ``/readyz``."""
    out = tmp_path / "dumps"
    out.mkdir()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(out), "serve", "--dev", "--policies", str(POLICIES),
         "--state-dir", str(tmp_path / "state"), "--port", str(port)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None and time.monotonic() < deadline, "pdp serve did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        (worker,) = children(process.pid)
        roles = {"supervisor": process.pid, "worker": worker}
        for pid in roles.values():
            os.kill(pid, signal.SIGUSR1)
        while len(list(out.glob("*.json"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        return {role: json.loads((out / f"{pid}.json").read_text()) for role, pid in roles.items()}
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_served_worker_has_imported_no_other_commands_module(tmp_path: Path) -> None:
    state = modules_at_ready(tmp_path)
    for role, seen in state.items():
        modules = set(seen["modules"])  # type: ignore[arg-type]
        assert {"pdp.cli.serve", "pdp.server", "uvicorn"} <= modules, role  # the real thing
        assert sorted(modules.intersection(OTHER_COMMANDS)) == [], role
        assert seen["collecting"] is True, role


def test_serve_freezes_its_imports_before_the_collector_is_back_on(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import pdp.api.app
    from pdp.cli.main import app

    seen: list[bool] = []
    freeze = pdp.api.app.freeze_imported_modules
    monkeypatch.setattr(pdp.api.app, "freeze_imported_modules",
                        lambda: (seen.append(gc.isenabled()), freeze())[1])
    was = gc.isenabled()
    # Stops at the configuration, right after the imports and the freeze.
    result = CliRunner().invoke(app, ["serve", "--config", str(tmp_path / "missing.toml")])
    assert result.exit_code == 1 and "configuration" in result.output
    assert seen == [False]  # frozen with no collection pass since the imports began
    assert gc.isenabled() is was


@pytest.mark.parametrize("supervised", [True, False])
def test_no_collection_runs_between_the_first_load_and_its_freeze(
        supervised: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import pdp.api.app
    from pdp.cli.serve import build_for_serving
    from pdp.config import load_settings
    from pdp.engine.store import preload

    collections: list[int] = []
    at_freeze: list[tuple[int, bool]] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    freeze = pdp.api.app.freeze_loaded_bundle
    monkeypatch.setattr(pdp.api.app, "freeze_loaded_bundle",
                        lambda: (at_freeze.append((len(collections), gc.isenabled())), freeze())[1])
    settings = load_settings(None, dev=True, policies=POLICIES, state_dir=tmp_path,
                             watch_policies=False)
    was = gc.isenabled()
    gc.enable()
    gc.callbacks.append(count)
    try:
        components = build_for_serving(settings, supervised=supervised)
        components.close()
    finally:
        gc.callbacks.remove(count)
        preload(None)
        gc.unfreeze()
        (gc.enable if was else gc.disable)()
    # Nothing walked the load's objects before the freeze's own young collection; the
    # collector is back on afterwards.
    assert at_freeze == [(0, False)]
    assert collections[0] == 1 and gc.isenabled() is was
