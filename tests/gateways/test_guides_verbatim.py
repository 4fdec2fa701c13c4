"""The gateway guide's "try the endpoint" commands answer as written against `make run`
(`pdp serve --dev` with no configuration), not `request.no_route`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import POLICIES, REPO
from tests.server import run_cli, start_server


def guide_curls() -> list[tuple[str, str]]:
    """(command, the comment line after it) for each `curl ... localhost:8181/v1/gateway`."""
    lines = (REPO / "docs" / "integrations.md").read_text().splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.startswith("curl") and "localhost:8181/v1/gateway" in line:
            found.append((line, lines[i + 1] if i + 1 < len(lines) else ""))
    return found


def test_the_guides_gateway_commands_work_with_make_run(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    curls = guide_curls()
    assert curls, "docs/integrations.md lost its try-it commands"
    shutil.copytree(POLICIES, tmp_path / "policies")
    server = start_server(["--dev"], cwd=tmp_path)  # what `make run` runs
    try:
        token = run_cli("token", "--spiffe-id", "spiffe://example.org/services/etl",
                        cwd=tmp_path).stdout.strip()
        for command, expected in curls:
            command = command.replace("localhost:8181", f"127.0.0.1:{server.port}")
            out = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                                 env={"TOKEN": token, "PATH": "/usr/bin:/bin"}, timeout=30).stdout
            assert "request.no_route" not in out, (command, out)
            status = re.match(r"# (HTTP/1.1 \d+)", expected)
            if status:
                assert out.startswith(status.group(1)), (command, out)
            assert "x-pdp-decision-id" in out.lower()
    finally:
        server.stop()
