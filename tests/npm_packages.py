"""Node packages the tests run, installed once per checkout with ``npm ci``.

Three suites need npm packages that are not ours: the real ``oidc-provider``
(``tests/identity/oidc/``), ``jose`` (``tests/broker/jose/``) and the TypeScript SDK's
pinned dev dependencies (``sdk/typescript/``). Each directory has a ``package-lock.json``;
its ``node_modules`` is gitignored and installed by the first test that needs it.

Under pytest-xdist two workers may need the same directory at once, and ``npm ci``
deletes ``node_modules`` before it installs: two at once would tear each other's files
out. So the install holds an exclusive ``flock`` on the directory itself (no lock file
to leave behind); the second worker waits, then finds the packages there and installs
nothing.

Missing node or npm, or a failing install, skips with the reason, and fails under
``PDP_REQUIRE_SERVICES=1`` (CI), like the other real services (``unavailable``).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import unavailable


def node_and_npm(purpose: str) -> tuple[str, str]:
    """The ``node`` and ``npm`` binaries; unavailable (skip, or fail in CI) without them."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        unavailable(f"node and npm are needed {purpose}")
    return node, npm


def npm_installed(directory: Path, sentinel: str, *, purpose: str) -> str:
    """``npm ci`` in ``directory`` unless ``node_modules/<sentinel>`` is already there.

    ``sentinel`` is a file only a finished install has (npm writes
    ``node_modules/.package-lock.json`` last; a package's ``package.json`` will do too).
    Returns the ``node`` binary to run the installed code with.
    """
    node, npm = node_and_npm(purpose)
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)  # released when the descriptor is closed
        if not (directory / "node_modules" / sentinel).is_file():
            done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=directory,
                                  capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                unavailable(f"npm ci failed in {directory} ({purpose}): {done.stderr[-2000:]}")
    finally:
        os.close(descriptor)
    return node
