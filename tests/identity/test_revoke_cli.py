"""`pdp revoke ...` / `pdp unrevoke` against a real `pdp serve`: the CLI drives the admin API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.identity.workloads import POLICIES, TrustDomain, authorize_body
from tests.server import start_server


def pdp(*args: str, cwd: Path, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PDP_ADMIN_TOKEN": token or ""}
    return subprocess.run([sys.executable, "-m", "pdp.cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


# A real server and several CLI processes (6-8 s): `make test` runs it, not the fast loop.
@pytest.mark.slow
def test_revoke_list_and_unrevoke_through_the_cli(tmp_path: Path) -> None:
    td = TrustDomain("example.org")
    (tmp_path / "pdp.toml").write_text(f"""
policies = "{POLICIES}"
watch_policies = false
pep_allowlist = ["*"]
[[trust_domains]]
name = "example.org"
bundle_file = "{td.write_bundle(tmp_path)}"
""")
    server = start_server(["--config", str(tmp_path / "pdp.toml")], cwd=tmp_path)
    try:
        token = td.jwt_svid("/services/etl", jti="etl-run-1")
        sre = td.jwt_svid("/ops/sre-console")

        def decide() -> dict[str, object]:
            return httpx.post(f"{server.url}/v1/authorize", json=authorize_body(token)).json()

        assert decide()["decision"] == "allow"
        revoked = pdp("revoke", "jti", "etl-run-1", "--reason", "leaked", "--expires", "1h",
                      "--url", server.url, cwd=tmp_path, token=sre)
        assert revoked.returncode == 0, revoked.stderr
        entry = json.loads(revoked.stdout)
        assert entry["kind"] == "jti" and entry["expires_at"]
        assert decide()["reason_codes"] == ["identity.revoked"]

        listed = pdp("revoke", "list", "--url", server.url, cwd=tmp_path, token=sre)
        assert entry["id"] in listed.stdout and "leaked" in listed.stdout
        lifted = pdp("unrevoke", entry["id"], "--url", server.url, cwd=tmp_path, token=sre)
        assert lifted.returncode == 0, lifted.stderr
        assert decide()["decision"] == "allow"

        refused = pdp("revoke", "spiffe-id", "spiffe://example.org/services/etl",
                      "--url", server.url, cwd=tmp_path,
                      token=td.jwt_svid("/services/etl"))  # not allowed identity.revoke
        assert refused.returncode == 1 and "HTTP 403" in refused.stderr
        no_token = pdp("revoke", "list", "--url", server.url, cwd=tmp_path)
        assert no_token.returncode == 1 and "PDP_ADMIN_TOKEN" in no_token.stderr
    finally:
        server.stop()
