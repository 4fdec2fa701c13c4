"""The TypeScript SDK's own tests (``node --test``), against the real ``pdp serve --dev``
these tests start, and its type declarations checked by ``tsc``.

Skipped with a message when Node 20+ (or npm, to install the pinned dev dependencies
from ``package-lock.json`` with ``npm ci``) is missing; under ``PDP_REQUIRE_SERVICES=1``
(CI) that is a failure instead.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import REPO
from tests.node_sdk import SDK, node_with_sdk

FIXTURES = REPO / "sdk" / "fixtures" / "api"
ETL = "spiffe://example.org/services/etl"


@pytest.fixture(scope="module")
def node_sdk() -> str:
    return node_with_sdk()


def test_node_test_runner_against_a_real_pdp(node_sdk, pdp_server, mint) -> None:
    ids = {ETL} | {json.loads(p.read_text())["subject"].get("spiffe_id")
                   for p in FIXTURES.glob("*.json")}
    tokens = {i: mint(i) for i in ids if i}
    result = subprocess.run(
        [node_sdk, "--test", "test/"], cwd=SDK, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PDP_URL": pdp_server.url, "PDP_TEST_TOKENS": json.dumps(tokens)})
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
