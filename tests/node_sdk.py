"""Node for the TypeScript SDK's tests: found, new enough, with its pinned dev dependencies.

Missing Node (or npm, or a failing ``npm ci``) skips with a message, and fails under
``PDP_REQUIRE_SERVICES=1`` (CI), like the other real services.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import REPO

SDK = REPO / "sdk" / "typescript"


def _unavailable(message: str) -> None:
    if os.environ.get("PDP_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}; PDP_REQUIRE_SERVICES=1 requires it")
    pytest.skip(f"{message}; install Node 20+ and npm to run the TypeScript SDK's tests")


def node_with_sdk() -> str:
    """The node binary, after ``npm ci`` in sdk/typescript if its node_modules is missing."""
    node = shutil.which("node")
    if node is None:
        _unavailable("node is not installed")
        raise AssertionError("unreachable")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 20:
        _unavailable(f"node {version} is older than 20")
    if not (SDK / "node_modules" / ".package-lock.json").is_file():
        npm = shutil.which("npm")
        if npm is None:
            _unavailable("npm is not installed")
            raise AssertionError("unreachable")
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=SDK,
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            _unavailable(f"npm ci failed: {done.stderr[-2000:]}")
    return node
