"""`pdp impact` reports exactly the decisions a tightened policy changes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pdp.components import build_components
from pdp.config import load_settings
from pdp.decision.model import AuthorizeInput, ResourceRef
from pdp.identity.model import BearerToken
from tests.conftest import POLICIES
from tests.server import run_cli

TIGHTENED = ("action in [App::Action::\"read\", App::Action::\"write\"]",
             "action == App::Action::\"read\"")



def expected_test_flips() -> set[str]:
    """Independently of `pdp impact`: dropping `write` from the pipelines' policy flips
    exactly the allowed writes that this policy alone allowed under the current bundle."""
    from pdp.authoring.policytests import run_suites
    from pdp.engine import load_bundle

    report = run_suites(load_bundle(POLICIES))
    flips = {f"{r.suite}: {r.description}" for r in report.results
             if r.decision.decision == "allow" and r.decision.action == 'App::Action::"write"'
             and [x.policy for x in r.decision.reasons] == ["dataset.pipelines.read-write"]}
    assert "tests/datasets.yaml: the ETL pipeline writes an analytics dataset" in flips
    return flips


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(POLICIES, tmp_path / "policies")
    candidate = tmp_path / "candidate"
    shutil.copytree(POLICIES, candidate)
    datasets = candidate / "datasets.cedar"
    assert TIGHTENED[0] in datasets.read_text()
    datasets.write_text(datasets.read_text().replace(*TIGHTENED))
    return tmp_path


def _log_decisions(workdir: Path) -> dict[str, str]:
    """Decide a known set of requests into the SQLite log; return id -> label."""
    settings = load_settings(None, dev=True, policies=workdir / "policies",
                             state_dir=workdir / ".pdp")
    parts = build_components(settings)
    issuer = parts.dev_issuer
    asks = {
        "etl reads sales-daily": ("spiffe://example.org/services/etl", "read", "sales-daily"),
        "etl writes sales-daily": ("spiffe://example.org/services/etl", "write", "sales-daily"),
        "etl writes ledger": ("spiffe://example.org/services/etl", "write", "ledger"),
        "responder writes customer-pii": ("spiffe://example.org/oncall/responder", "write",
                                          "customer-pii"),
        "admin deletes ledger": ("spiffe://example.org/services/admin-console", "delete", "ledger"),
    }
    ids = {}
    try:
        for label, (who, action, dataset) in asks.items():
            d = parts.service.authorize_sync(AuthorizeInput(
                credential=BearerToken(issuer.mint(who)), action=action,
                resource=ResourceRef("App::Dataset", dataset)))
            assert d.decision in ("allow", "deny")
            ids[d.decision_id] = label
        refused = parts.service.authorize_sync(AuthorizeInput(
            credential=BearerToken("junk"), action="read",
            resource=ResourceRef("App::Dataset", "sales-daily")))
        assert refused.reason_codes[0].startswith("identity.")
    finally:
        parts.close()
    return ids


def test_impact_reports_exactly_the_flipped_test_cases_and_logged_decisions(workdir: Path) -> None:
    logged = _log_decisions(workdir)
    r = run_cli("impact", "--candidate", "candidate", "policies", "--json", cwd=workdir)
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    flips = report["flips"]
    assert {f["ref"] for f in flips if f["source"] == "test"} == expected_test_flips()
    flipped_log = {logged[f["ref"]] for f in flips if f["source"] == "log"}
    assert flipped_log == {"etl writes sales-daily", "responder writes customer-pii"}
    assert all(f["before"] == "allow" and f["after"] == "deny" for f in flips)
    assert report["by_policy"] == {"dataset.pipelines.read-write": len(flips)}
    assert report["records_evaluated"] == 5 and report["records_skipped"] >= 1
    etl_tests = {f["ref"] for f in flips if f["source"] == "test"
                 and f["principal"] == "spiffe://example.org/services/etl"}
    assert report["by_principal"]["spiffe://example.org/services/etl"] == len(etl_tests) + 1


def test_impact_of_an_identical_candidate_is_empty_and_exits_0(workdir: Path) -> None:
    _log_decisions(workdir)
    r = run_cli("impact", "--candidate", "policies", "policies", cwd=workdir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("impact: 0 decisions would change")


def test_impact_takes_a_git_ref_as_the_candidate(workdir: Path) -> None:
    repo = workdir / "policies"
    run = lambda *a: subprocess.run(["git", "-C", str(repo), "-c", "user.name=t",  # noqa: E731
                                     "-c", "user.email=t@t", *a], check=True, capture_output=True)
    run("init", "-q", "-b", "main")
    run("add", ".")
    run("commit", "-qm", "current")
    run("checkout", "-qb", "tighten")
    shutil.copy(workdir / "candidate" / "datasets.cedar", repo / "datasets.cedar")
    run("commit", "-qam", "pipelines only read")
    run("checkout", "-q", "main")
    r = run_cli("impact", "--candidate", "tighten", "policies", "--no-log", "--json",
                cwd=workdir)
    assert r.returncode == 1, r.stderr
    assert {f["ref"] for f in json.loads(r.stdout)["flips"]} == expected_test_flips()
    only_new_denies = run_cli("impact", "--candidate", "tighten", "policies", "--no-log",
                              "--fail-on", "deny-to-allow", cwd=workdir)
    assert only_new_denies.returncode == 0
