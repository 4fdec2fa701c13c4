"""The README's quickstart against a real `pdp serve --dev` process over HTTP."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from tests.conftest import POLICIES
from tests.server import run_cli, start_server


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(POLICIES, tmp_path / "policies")
    return tmp_path


def test_quickstart_allow_deny_lookup_and_tail_over_real_http(workdir: Path) -> None:
    server = start_server(["--dev"], cwd=workdir)
    try:
        token = run_cli("token", "--spiffe-id", "spiffe://example.org/services/etl",
                        cwd=workdir).stdout.strip()
        assert token.count(".") == 2
        allow = httpx.post(f"{server.url}/v1/authorize", json={
            "subject": {"token": token}, "action": "read",
            "resource": {"type": "App::Dataset", "id": "sales-daily"}}).json()
        assert allow["decision"] == "allow"
        assert allow["reasons"][0]["policy"] == "dataset.pipelines.read-write"
        deny = httpx.post(f"{server.url}/v1/authorize", json={
            "subject": {"token": token}, "action": "write",
            "resource": {"type": "App::Dataset", "id": "ledger"}}).json()
        assert deny["decision"] == "deny" and "no policy permits" in deny["explanation"]
        auditor = run_cli("token", "--spiffe-id", "spiffe://example.org/audit/auditor",
                          cwd=workdir).stdout.strip()
        record = httpx.get(f"{server.url}/v1/decisions/{deny['decision_id']}",
                           headers={"authorization": f"Bearer {auditor}"}).json()
        assert record["decision_id"] == deny["decision_id"]
        assert record["explanation"] == deny["explanation"]
    finally:
        server.stop()
    tail = run_cli("audit", "tail", "-n", "5", "--json", cwd=workdir)
    assert tail.returncode == 0
    assert deny["decision_id"] in tail.stdout and allow["decision_id"] in tail.stdout


def test_without_dev_the_development_issuer_is_not_trusted(workdir: Path) -> None:
    token = run_cli("token", "--spiffe-id", "spiffe://example.org/services/etl",
                    cwd=workdir).stdout.strip()
    server = start_server([], cwd=workdir, env={"PDP_PEP_ALLOWLIST": '["*"]'})
    try:
        d = httpx.post(f"{server.url}/v1/authorize", json={
            "subject": {"token": token}, "action": "read",
            "resource": {"type": "App::Dataset", "id": "sales-daily"}}).json()
        assert d["decision"] == "deny"
        assert d["reason_codes"][0].startswith("identity.")
    finally:
        server.stop()


def test_invalid_bundle_refuses_to_start_naming_the_problem(workdir: Path) -> None:
    (workdir / "policies" / "bad.cedar").write_text(
        'permit(principal, action, resource) when { context.nope };\n')
    result = run_cli("serve", "--dev", "--port", "1", cwd=workdir)
    assert result.returncode == 1
    assert "bad.cedar:1: policy 'bad.cedar#0'" in result.stderr and "`nope`" in result.stderr
