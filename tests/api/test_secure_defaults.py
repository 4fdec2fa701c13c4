"""Secure by default (issue 13, items 3 and 4): dev mode only from the --dev flag, and no
decision endpoints open to any caller unless the operator wrote so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pdp.config import Settings, load_settings
from tests.conftest import POLICIES
from tests.server import start_server


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(POLICIES, tmp_path / "policies")
    return tmp_path


def _serve(workdir: Path, *args: str, env: dict[str, str] | None = None,
           ) -> subprocess.CompletedProcess[str]:
    """``pdp serve`` expected to refuse to start (it exits before listening)."""
    return subprocess.run([sys.executable, "-m", "pdp.cli.main", "serve", "--port", "1", *args],
                          cwd=workdir, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_pdp_dev_in_the_environment_is_refused(workdir: Path) -> None:
    result = _serve(workdir, env={"PDP_DEV": "true", "PDP_PEP_ALLOWLIST": '["*"]'})
    assert result.returncode == 1
    assert "PDP_DEV is not accepted" in result.stderr and "--dev flag" in result.stderr
    assert not (workdir / ".pdp" / "dev").exists()  # no dev issuer key was made


def test_dev_in_the_config_file_is_refused(workdir: Path) -> None:
    (workdir / "pdp.toml").write_text('dev = true\npep_allowlist = ["*"]\n')
    result = _serve(workdir, "--config", "pdp.toml")
    assert result.returncode == 1
    assert "`dev` in the config file is not accepted" in result.stderr
    assert not (workdir / ".pdp" / "dev").exists()


def test_only_a_flag_turns_dev_mode_on_and_workers_inherit_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDP_DEV", "1")
    with pytest.raises(ValueError, match="PDP_DEV"):
        load_settings(None)
    monkeypatch.delenv("PDP_DEV")
    assert load_settings(None).dev is False
    flagged = load_settings(None, dev=True)
    # `pdp serve --dev --workers N` hands its resolved settings to each worker as JSON.
    assert Settings.model_validate_json(flagged.model_dump_json()).dev is True


def test_an_empty_pep_allowlist_outside_dev_refuses_to_start(workdir: Path) -> None:
    result = _serve(workdir)
    assert result.returncode == 1
    assert "pep_allowlist is empty" in result.stderr
    assert 'pep_allowlist = ["*"]' in result.stderr


def test_the_startup_lines_say_who_may_ask_and_warn_loudly_in_dev(workdir: Path) -> None:
    listed = start_server([], cwd=workdir, env={
        "PDP_PEP_ALLOWLIST": '["spiffe://example.org/peps/envoy", "spiffe://example.org/gw/*"]'})
    try:
        r = httpx.post(f"{listed.url}/v1/authorize", json={
            "subject": {"token": "x.y.z"}, "action": "read",
            "resource": {"type": "App::Dataset", "id": "sales-daily"}})
        assert r.status_code == 401  # no PEP credential: refused
    finally:
        listed.stop()
    assert ("PEPs that may ask for decisions: spiffe://example.org/peps/envoy, "
            "spiffe://example.org/gw/*") in listed.log.read_text()
    assert "DEVELOPMENT MODE" not in listed.log.read_text()

    dev = start_server(["--dev"], cwd=workdir)
    dev.stop()
    text = dev.log.read_text()
    assert "WARNING: DEVELOPMENT MODE (--dev). NEVER USE IT IN PRODUCTION." in text
    assert "PEPs that may ask for decisions: any caller (--dev)" in text
