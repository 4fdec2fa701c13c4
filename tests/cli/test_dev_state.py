"""`pdp token` and the admin commands find the state of the server they talk to, from any
directory; the start-up banner prints commands that work verbatim; a busy port is
reported before "serving"; dev X.509-SVIDs are trusted by `--dev`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from pdp.cli.main import app
from pdp.identity.dev_x509 import mint_x509_svid
from tests.conftest import POLICIES
from tests.server import ServerProcess, run_cli, start_server

ETL = "spiffe://example.org/services/etl"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PDP_")}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`pdp serve --dev --config pdp.toml` whose state_dir is only named in the file."""
    root = tmp_path_factory.mktemp("served")
    shutil.copytree(POLICIES, root / "policies")
    config = root / "pdp.toml"
    config.write_text(f'state_dir = "{root / "elsewhere"}"\npolicies = "{root / "policies"}"\n')
    server = start_server(["--dev", "--config", str(config)], cwd=root, env=_env())
    try:
        yield {"server": server, "root": root, "banner": server.log.read_text()}
    finally:
        server.stop()


def _banner_command(banner: str, label: str) -> str:
    match = re.search(rf"{label}:\s+(.*)$", banner, re.M)
    assert match, banner
    return match.group(1)


def _authorize(server: ServerProcess, subject: dict[str, str]) -> dict[str, Any]:
    body = {"subject": subject, "action": "read",
            "resource": {"type": "App::Dataset", "id": "sales-daily"}}
    answer: dict[str, Any] = httpx.post(f"{server.url}/v1/authorize", json=body, timeout=10).json()
    return answer


def test_the_banners_token_command_works_verbatim_from_another_directory(
        served: dict[str, Any], tmp_path: Path) -> None:
    command = _banner_command(served["banner"], "mint a token")
    done = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True,
                          env=_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr  # the server's key, not a new one
    assert str(served["root"] / "elsewhere") in done.stderr  # says which key and server
    assert _authorize(served["server"], {"token": done.stdout.strip()})["decision"] == "allow"
    assert not (tmp_path / ".pdp").exists()


def test_a_token_minted_elsewhere_warns_that_no_running_server_trusts_it(
        served: dict[str, Any], tmp_path: Path) -> None:
    done = run_cli("token", "--spiffe-id", ETL, cwd=tmp_path)
    assert done.returncode == 0
    assert "created just now" in done.stderr and str(tmp_path / ".pdp") in done.stderr
    answer = _authorize(served["server"], {"token": done.stdout.strip()})
    assert answer["decision"] == "deny" and answer["reason_codes"] == ["identity.unknown_key"]


def test_admin_commands_get_a_fresh_dev_credential_per_call(
        served: dict[str, Any], tmp_path: Path) -> None:
    command = _banner_command(served["banner"], "admin command")
    done = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True,
                          env=_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "context version" in done.stdout


def test_admin_commands_run_the_configured_credential_command(
        served: dict[str, Any], tmp_path: Path) -> None:
    mint = (f"{sys.executable} -m pdp.cli.main token --config {served['root'] / 'pdp.toml'} "
            "--ttl 1m --spiffe-id spiffe://example.org/ops/sre-console")
    env = {**_env(), "PDP_ADMIN_TOKEN_COMMAND": mint}
    for _ in range(2):  # each call runs it again
        done = subprocess.run(
            [sys.executable, "-m", "pdp.cli.main", "context", "incident", "set", "--reason",
             "drill", "--id", "drill-1", "--for", "5m", "--url", served["server"].url],
            cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "declared drill-1" in done.stdout
    token_file = tmp_path / "token"
    token_file.write_text(subprocess.run(mint, shell=True, capture_output=True, text=True,
                                         env=_env(), timeout=60).stdout)
    cleared = subprocess.run(
        [sys.executable, "-m", "pdp.cli.main", "context", "incident", "clear", "drill-1",
         "--url", served["server"].url], cwd=tmp_path, capture_output=True, text=True,
        env={**_env(), "PDP_ADMIN_TOKEN_FILE": str(token_file)}, timeout=60)
    assert cleared.returncode == 0 and "ended drill-1" in cleared.stdout, cleared.stderr


def test_a_dev_x509_svid_is_trusted_by_serve_dev(served: dict[str, Any]) -> None:
    svid = mint_x509_svid(served["root"] / "elsewhere", ETL)
    answer = _authorize(served["server"], {"x509": svid.chain_pem})
    assert answer["decision"] == "allow", answer
    other = mint_x509_svid(served["root"] / "another-state", ETL)  # another dev CA
    refused = _authorize(served["server"], {"x509": other.chain_pem})
    assert refused["decision"] == "deny" and refused["reason_codes"][0].startswith("identity.")


def _invoke(monkeypatch: pytest.MonkeyPatch, cwd: Path, *args: str) -> Any:
    """In-process, from ``cwd`` (a subprocess start costs seconds on a busy machine)."""
    monkeypatch.chdir(cwd)
    for name in [k for k in os.environ if k.startswith("PDP_")]:
        monkeypatch.delenv(name)
    return CliRunner().invoke(app, list(args))


def test_token_x509_writes_a_certificate_and_a_private_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done = _invoke(monkeypatch, tmp_path, "token", "--x509", "--spiffe-id", ETL, "--out", "svid")
    assert done.exit_code == 0, done.output
    assert (tmp_path / "svid" / "svid.pem").read_text().startswith("-----BEGIN CERTIFICATE")
    assert (tmp_path / "svid" / "svid-key.pem").stat().st_mode & 0o077 == 0
    body = {"subject": {"x509": (tmp_path / "svid" / "svid.pem").read_text()},
            "action": "read", "resource": {"type": "App::Dataset", "id": "sales-daily"}}
    (tmp_path / "body.json").write_text(json.dumps(body))
    shutil.copytree(POLICIES, tmp_path / "policies")
    check = _invoke(monkeypatch, tmp_path, "check", "--dev", "--input", "body.json")
    assert check.exit_code == 0, check.output


def test_a_busy_port_is_reported_before_serving(served: dict[str, Any], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pdp.cli.main", "serve", "--dev", "--policies",
         str(POLICIES), "--state-dir", str(tmp_path), "--port", str(served["server"].port)],
        cwd=tmp_path, capture_output=True, text=True, env=_env(), timeout=60)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{served['server'].port}" in done.stderr
    assert "serving" not in done.stderr


def test_check_hints_at_dev_for_a_dev_token(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(POLICIES, tmp_path / "policies")
    token = _invoke(monkeypatch, tmp_path, "token", "--spiffe-id", ETL).stdout.strip()
    done = _invoke(monkeypatch, tmp_path, "check", "--token", token, "--action", "read",
                   "--resource", "App::Dataset::sales-daily")
    assert done.exit_code == 2
    assert "hint:" in done.stderr and "add --dev" in done.stderr
    with_dev = _invoke(monkeypatch, tmp_path, "check", "--dev", "--token", token, "--action",
                       "read", "--resource", "App::Dataset::sales-daily")
    assert with_dev.exit_code == 0 and "hint:" not in with_dev.stderr


def test_unrevoke_takes_a_unique_prefix_of_the_revocation_id(
        served: dict[str, Any], tmp_path: Path) -> None:
    env = {**_env(), "PDP_CONFIG": str(served["root"] / "pdp.toml")}

    def pdp(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pdp.cli.main", *args, "--dev", "--url",
                               served["server"].url], cwd=tmp_path, capture_output=True,
                              text=True, env=env, timeout=60)

    revoked = pdp("revoke", "spiffe-id", "spiffe://example.org/agents/prefix-test",
                  "--reason", "test")
    assert revoked.returncode == 0, revoked.stderr
    full = json.loads(revoked.stdout)["id"]
    lifted = pdp("unrevoke", full[:len(full) - 4])
    assert lifted.returncode == 0, lifted.stderr
    assert f"lifted: {full}" in lifted.stderr
    again = pdp("unrevoke", full[:len(full) - 4])
    assert again.returncode == 1 and "nor one whose id starts with it" in again.stderr


def test_unique_match_takes_an_id_or_its_one_prefix() -> None:
    from pdp.cli.common import unique_match

    ids = ["rev-aaaa1111", "rev-aaaa2222", "rev-bbbb"]
    assert unique_match("rev-bbbb", ids, "x") == "rev-bbbb"
    assert unique_match("rev-aaaa1", ids, "x") == "rev-aaaa1111"
    for refused in ("rev-aaaa", "rev", "rev-cccc"):
        with pytest.raises(typer.Exit):
            unique_match(refused, ids, "x")
