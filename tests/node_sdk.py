"""Node for the TypeScript SDK's tests: found, new enough, with its pinned dev dependencies.

Missing Node (or npm, or a failing ``npm ci``) skips with a message, and fails under
``PDP_REQUIRE_SERVICES=1`` (CI), like the other real services.
"""

from __future__ import annotations

import subprocess

from tests.conftest import REPO, unavailable
from tests.npm_packages import npm_installed

SDK = REPO / "sdk" / "typescript"


def node_with_sdk() -> str:
    """The node binary, after ``npm ci`` in sdk/typescript if its node_modules is missing."""
    node = npm_installed(SDK, ".package-lock.json",
                         purpose="for the TypeScript SDK's tests (Node 20+)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 20:
        unavailable(f"node {version} is older than 20; install Node 20+ to run the TypeScript "
                    "SDK's tests")
    return node
