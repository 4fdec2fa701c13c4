"""`pdp grant create|list|revoke` against a real server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from tests.conftest import POLICIES
from tests.server import run_cli, start_server


# A real server and several CLI processes (6-8 s): `make test` runs it, not the fast loop.
@pytest.mark.slow
def test_grant_cli_creates_lists_and_revokes_and_the_grant_takes_effect(tmp_path: Path) -> None:
    shutil.copytree(POLICIES, tmp_path / "policies")
    server = start_server(["--dev"], cwd=tmp_path)
    try:
        sre = run_cli("token", "--spiffe-id", "spiffe://example.org/ops/sre-console",
                      cwd=tmp_path).stdout.strip()
        agent = run_cli("token", "--spiffe-id", "spiffe://example.org/services/etl",
                        cwd=tmp_path).stdout.strip()
        read = {"subject": {"token": agent}, "action": "read",
                "resource": {"type": "App::Dataset", "id": "ledger"}}
        assert httpx.post(f"{server.url}/v1/authorize", json=read).json()["decision"] == "deny"

        admin = ["--url", server.url, "--token", sre]
        created = run_cli("grant", "create", "--template", "grant.dataset.read",
                          "--principal", "spiffe://example.org/services/etl",
                          "--resource", "App::Dataset::ledger", "--ttl", "10m",
                          "--task", "T-9", *admin, cwd=tmp_path)
        assert created.returncode == 0, created.stderr
        grant = json.loads(created.stdout)
        allowed = httpx.post(f"{server.url}/v1/authorize", json=read).json()
        assert allowed["decision"] == "allow"
        assert allowed["reasons"][0]["policy"] == f"grant:{grant['id']}"

        listed = run_cli("grant", "list", *admin, cwd=tmp_path)
        assert grant["id"] in listed.stdout and "active" in listed.stdout and "T-9" in listed.stdout
        revoked = run_cli("grant", "revoke", grant["id"], *admin, cwd=tmp_path)
        assert revoked.returncode == 0 and f"revoked {grant['id']}" in revoked.stdout
        assert httpx.post(f"{server.url}/v1/authorize", json=read).json()["decision"] == "deny"

        refused = run_cli("grant", "create", "--template", "grant.dataset.read",
                          "--principal", "spiffe://example.org/services/etl",
                          "--resource", "App::Dataset::ledger", "--task", "T-9",
                          "--url", server.url, "--token", agent, cwd=tmp_path)
        assert refused.returncode == 1 and "HTTP 403" in refused.stderr
    finally:
        server.stop()
