"""`pdp context ...` against a real `pdp serve --dev` over HTTP."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pdp.identity.dev_issuer import DevIssuer
from tests.conftest import POLICIES
from tests.server import run_cli, start_server

ETL = "spiffe://example.org/services/etl"


# A real server and several CLI processes (6-8 s): `make test` runs it, not the fast loop.
@pytest.mark.slow
def test_the_cli_declares_shows_and_ends_context_as_an_authenticated_admin(tmp_path: Path) -> None:
    shutil.copytree(POLICIES, tmp_path / "policies")
    server = start_server(["--dev"], cwd=tmp_path)
    try:
        sre = DevIssuer.load_or_create(tmp_path / ".pdp").mint(
            "spiffe://example.org/ops/sre-console")
        common = ["--url", server.url, "--token", sre]

        # No credential at all: refused before any request, naming where one comes from.
        missing = run_cli("context", "risk", "set", "high", "--reason", "x", "--url", server.url,
                          cwd=tmp_path)
        assert missing.returncode == 1
        assert "--token" in missing.stderr and "PDP_ADMIN_TOKEN" in missing.stderr
        # A credential the PDP does not accept: the server's 401.
        refused = run_cli("context", "risk", "set", "high", "--reason", "x", "--url", server.url,
                          "--token", "not-a-jwt", cwd=tmp_path)
        assert refused.returncode == 1 and "401" in refused.stderr

        declared = run_cli("context", "incident", "set", "--scope", "resource_tag:pii",
                           "--level", "critical", "--reason", "leak", "--id", "INC-9",
                           "--for", "10m", *common, cwd=tmp_path)
        assert declared.returncode == 0, declared.stderr
        assert "declared INC-9: critical incident for resource_tag:pii until" in declared.stdout

        risk = run_cli("context", "risk", "set", "high", "--principal", ETL, "--reason",
                       "investigating", "--for", "5m", *common, cwd=tmp_path)
        assert risk.returncode == 0 and f"{ETL} risk set to high until" in risk.stdout

        shown = run_cli("context", "show", "--json", "--principal", ETL, "--resource-type",
                        "App::Dataset", "--tag", "pii", *common, cwd=tmp_path)
        body = json.loads(shown.stdout)
        assert [i["id"] for i in body["incidents"]] == ["INC-9"]
        assert body["risk"]["principals"][ETL]["level"] == 2
        assert (body["snapshot"]["incident_level"], body["snapshot"]["risk_level"]) == (3, 2)

        cleared = run_cli("context", "incident", "clear", "--all", *common, cwd=tmp_path)
        assert cleared.returncode == 0 and "ended INC-9" in cleared.stdout
        version = run_cli("context", "version", "--url", server.url, cwd=tmp_path)
        assert version.stdout.strip().endswith(" ok")
    finally:
        server.stop()
