"""`pdp audit`: ids are never cut, any unique prefix is taken, `tail -f` follows the log."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pdp.cli.main import app
from pdp.components import build_components
from pdp.config import load_settings
from pdp.decision.model import AuthorizeInput, ResourceRef
from pdp.identity.model import BearerToken
from tests.conftest import POLICIES

ETL = "spiffe://example.org/services/etl"


def _decide(state: Path, n: int) -> list[str]:
    """``n`` decisions logged to the SQLite log under ``state``; their ids."""
    settings = load_settings(None, dev=True, policies=POLICIES, state_dir=state,
                             watch_policies=False)
    components = build_components(settings)
    try:
        token = components.dev_issuer.mint(ETL)  # type: ignore[union-attr]
        return [components.service.authorize_sync(AuthorizeInput(
            credential=BearerToken(token), action="read",
            resource=ResourceRef("App::Dataset", "sales-daily"), pep="cli")).decision_id
            for _ in range(n)]
    finally:
        components.close()


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    state = tmp_path_factory.mktemp("state")
    return {"state": state, "ids": _decide(state, 3)}


def run(logged: dict[str, Any], *args: str, columns: int = 80) -> Any:
    return CliRunner().invoke(app, ["audit", *args, "--state-dir", str(logged["state"])],
                              env={"COLUMNS": str(columns), "PDP_POLICIES": str(POLICIES)})


@pytest.mark.parametrize("command", [["tail"], ["query"]])
@pytest.mark.parametrize("columns", [80, 250])
def test_tables_never_cut_a_decision_id(logged, command: list[str], columns: int) -> None:
    result = run(logged, *command, columns=columns)
    assert result.exit_code == 0, result.output
    for decision_id in logged["ids"]:
        assert decision_id in result.stdout, result.stdout


def test_show_and_replay_take_a_unique_prefix(logged) -> None:
    decision_id = logged["ids"][-1]
    others = logged["ids"][:-1]
    length = next(n for n in range(4, len(decision_id) + 1)
                  if not any(o.startswith(decision_id[:n]) for o in others))
    prefix = decision_id[:length]
    shown = run(logged, "show", prefix, "--json")
    assert shown.exit_code == 0, shown.output
    assert f'"decision_id": "{decision_id}"' in shown.stdout
    assert run(logged, "show", prefix.upper(), "--json").exit_code == 0
    replayed = run(logged, "replay", prefix)
    assert replayed.exit_code == 0 and decision_id in replayed.stdout


def test_an_ambiguous_or_short_prefix_is_refused_with_the_candidates(logged) -> None:
    a, b = logged["ids"][:2]
    common = os.path.commonprefix([a, b])
    if len(common) >= 4:  # uuid7s made in one run share their millisecond clock's top bits
        result = run(logged, "show", common)
        assert result.exit_code == 1
        assert "ambiguous" in result.output and a in result.output and b in result.output
    short = run(logged, "show", a[:3])
    assert short.exit_code == 1 and "at least 4 characters" in short.output
    missing = run(logged, "show", "ffffffff")
    assert missing.exit_code == 1 and "no decision" in missing.output


def _read_until(process: subprocess.Popen[str], wanted: list[str], timeout: float = 60) -> str:
    """What ``process`` printed until every string in ``wanted`` appeared (or the timeout).

    Raw reads on the pipe: a text reader's buffer would hide lines from ``select``."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    seen = ""
    deadline = time.monotonic() + timeout
    while not all(w in seen for w in wanted) and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen += chunk.decode()
    return seen


def test_tail_follow_prints_new_decisions_as_they_are_logged(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = _decide(state, 1)
    follower = subprocess.Popen(
        [sys.executable, "-m", "pdp.cli.main", "audit", "tail", "-f", "-n", "1",
         "--interval", "0.1", "--state-dir", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PDP_POLICIES": str(POLICIES)})
    try:
        start = _read_until(follower, [first[0]])
        assert first[0] in start  # the last record before it started, id whole
        later = _decide(state, 2)  # another process appends while it follows
        followed = _read_until(follower, later)
        assert all(decision_id in followed for decision_id in later), followed
        assert first[0] not in followed  # printed once, not again
    finally:
        follower.terminate()
        follower.wait(timeout=10)
