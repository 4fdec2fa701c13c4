"""`make run` on an installed checkout does not reinstall: the install stamp is newer than
the dependency files. Touching one of them (a new dependency) installs again; a missing
stamp (an interrupted install) too. Checked with `make -n` (what would run) on a copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO


def would_run(checkout: Path, target: str) -> str:
    # Under `make test` this runs inside a make: its MAKEFLAGS/MAKELEVEL would add
    # "Entering directory" lines (and flags) to what is printed.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    result = subprocess.run(["make", "--no-print-directory", "-n", target], cwd=checkout,
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "sdk" / "python").mkdir(parents=True)
    shutil.copy(REPO / "sdk" / "python" / "pyproject.toml", tmp_path / "sdk/python/pyproject.toml")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").write_text("")
    past = time.time() - 3600
    for path in (tmp_path / "pyproject.toml", tmp_path / "sdk/python/pyproject.toml"):
        os.utime(path, (past, past))
    stamp = tmp_path / ".venv" / ".installed"
    stamp.write_text("")
    os.utime(stamp, (past + 1800, past + 1800))  # installed after the last change, not "now"
    return tmp_path


def test_an_installed_checkout_serves_without_reinstalling(installed: Path) -> None:
    commands = would_run(installed, "run")
    assert "pip install" not in commands
    assert commands.strip().endswith("pdp serve --dev")


@pytest.mark.parametrize("changed", ["pyproject.toml", "sdk/python/pyproject.toml"])
def test_a_changed_dependency_file_installs_again(installed: Path, changed: str) -> None:
    os.utime(installed / changed)  # now: newer than the stamp
    commands = would_run(installed, "run")
    assert "pip install" in commands and "touch .venv/.installed" in commands


def test_an_interrupted_install_leaves_no_stamp_and_installs_again(installed: Path) -> None:
    (installed / ".venv" / ".installed").unlink()
    assert "pip install" in would_run(installed, "install")
