"""The TypeScript SDK's own tests (``node --test``), against the real ``pdp serve --dev``
these tests start, and its type declarations checked by ``tsc``.

Skipped with a message when Node 20+ (or npm, to install the pinned dev dependencies
from ``package-lock.json`` with ``npm ci``) is missing; under ``PDP_REQUIRE_SERVICES=1``
(CI) that is a failure instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import POLICIES, REPO
from tests.node_sdk import SDK, node_with_sdk
from tests.server import ServerProcess, run_cli, start_server

pytestmark = pytest.mark.slow

FIXTURES = REPO / "sdk" / "fixtures" / "api"
ETL = "spiffe://example.org/services/etl"
PLANNER = "spiffe://example.org/agents/planner"
SUMMARIZER = "spiffe://example.org/agents/summarizer"
# The example bundle lets agents work only in business hours; the broker's PDP makes every
# moment one, so the exchange tests pass whenever they run (the calendar is not under test).
ALWAYS_OPEN = {"PDP_LIVE__BUSINESS_HOURS__DAYS": "[0, 1, 2, 3, 4, 5, 6]",
               "PDP_LIVE__BUSINESS_HOURS__START": "00:00",
               "PDP_LIVE__BUSINESS_HOURS__END": "23:59:59.999999"}


@pytest.fixture(scope="module")
def node_sdk() -> str:
    return node_with_sdk()


@pytest.fixture(scope="module")
def broker_pdp(tmp_path_factory: pytest.TempPathFactory,
               ) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    """A second `pdp serve --dev` for the credential broker's tests (always business hours),
    and two agents' JWT-SVIDs minted for it with `pdp token` (one hour: room to exchange)."""
    workdir: Path = tmp_path_factory.mktemp("ts-broker")
    shutil.copytree(POLICIES, workdir / "policies")
    server = start_server(["--dev"], cwd=workdir, env=ALWAYS_OPEN)
    try:
        svids: dict[str, str] = {}
        for agent in (PLANNER, SUMMARIZER):
            minted = run_cli("token", "--spiffe-id", agent, "--ttl", "1h", cwd=workdir)
            assert minted.returncode == 0, minted.stderr
            svids[agent] = minted.stdout.strip().splitlines()[-1]
        yield server, svids
    finally:
        server.stop()


def test_node_test_runner_against_a_real_pdp(node_sdk, pdp_server, mint, broker_pdp) -> None:
    ids = {ETL} | {json.loads(p.read_text())["subject"].get("spiffe_id")
                   for p in FIXTURES.glob("*.json")}
    tokens = {i: mint(i) for i in ids if i}
    broker, agent_svids = broker_pdp
    result = subprocess.run(
        [node_sdk, "--test", "test/"], cwd=SDK, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PDP_URL": pdp_server.url, "PDP_TEST_TOKENS": json.dumps(tokens),
             "PDP_BROKER_URL": broker.url, "PDP_AGENT_SVIDS": json.dumps(agent_svids)})
    summary = {line.split()[1]: int(line.split()[2]) for line in result.stdout.splitlines()
               if line.startswith("# ") and len(line.split()) == 3
               and line.split()[2].isdigit()}
    failures = result.stdout[result.stdout.find("not ok"):] if "not ok" in result.stdout else ""
    assert result.returncode == 0, (failures or result.stdout)[:8000] + result.stderr[-2000:]
    assert summary.get("fail") == 0 and summary.get("pass", 0) > 40, summary
    assert summary.get("skipped") == 0, "with PDP_URL set no test may skip"


def test_type_declarations_match_the_sources(node_sdk) -> None:
    tsc = SDK / "node_modules" / "typescript" / "bin" / "tsc"
    result = subprocess.run([node_sdk, str(tsc), "-p", "."], cwd=SDK, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:]
