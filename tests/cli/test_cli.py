"""The `pdp` subcommands, run as a user runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import POLICIES
from tests.server import run_cli


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(POLICIES, tmp_path / "policies")
    return tmp_path


def test_validate_accepts_the_example_bundle(workdir: Path) -> None:
    r = run_cli("validate", "policies", cwd=workdir)
    assert r.returncode == 0 and "is valid" in r.stdout


def test_validate_reports_every_problem_and_fails(workdir: Path) -> None:
    (workdir / "policies" / "x.cedar").write_text(
        'permit(principal, action, resource) when { context.nope };\n'
        '@id("api.call.scoped") permit(principal, action, resource);\n')
    r = run_cli("validate", "policies", cwd=workdir)
    assert r.returncode == 1
    assert "x.cedar:1: policy 'x.cedar#0': " in r.stderr and "`nope`" in r.stderr
    assert "x.cedar:2: policy 'api.call.scoped': duplicate @id" in r.stderr


def test_validate_warns_about_policies_without_id_and_reason(workdir: Path) -> None:
    (workdir / "policies" / "x.cedar").write_text(
        'permit(principal, action == App::Action::"read", resource);\n')
    r = run_cli("validate", "policies", cwd=workdir)
    assert r.returncode == 0 and "is valid" in r.stdout
    assert "warning: x.cedar:1: policy 'x.cedar#0': no @id" in r.stderr
    assert "warning: x.cedar:1: policy 'x.cedar#0': no @reason" in r.stderr


def test_test_runs_the_bundle_suites_and_prints_the_summary(workdir: Path) -> None:
    r = run_cli("test", "policies", cwd=workdir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1].endswith("passed, 0 failed")


def test_test_fails_with_one_line_per_failing_case(workdir: Path) -> None:
    (workdir / "policies" / "tests" / "wrong.yaml").write_text(
        "cases:\n  - description: expects the impossible\n"
        "    principal: spiffe://example.org/services/etl\n    action: write\n"
        "    resource: {type: App::Dataset, id: ledger}\n    expect: {decision: allow}\n")
    r = run_cli("test", "policies", cwd=workdir)
    assert r.returncode == 1
    assert "FAIL tests/wrong.yaml: expects the impossible: expected allow, got deny" in r.stdout
    assert r.stdout.strip().endswith("1 failed")


def test_fmt_check_flags_unformatted_files_and_fmt_fixes_them(workdir: Path) -> None:
    path = workdir / "policies" / "apis.cedar"
    path.write_text(path.read_text().replace("permit (\n  principal,", "permit(principal,"))
    r = run_cli("fmt", "--check", "policies", cwd=workdir)
    assert r.returncode == 1 and "would reformat" in r.stdout
    assert run_cli("fmt", "policies", cwd=workdir).returncode == 0
    assert run_cli("fmt", "--check", "policies", cwd=workdir).returncode == 0


def test_check_verifies_a_token_and_prints_the_api_json(workdir: Path) -> None:
    token = run_cli("token", "--spiffe-id", "spiffe://example.org/services/etl",
                    "--ttl", "2m", cwd=workdir).stdout.strip()
    r = run_cli("check", "--dev", "--token", token, "--action", "read",
                "--resource", "App::Dataset::sales-daily", cwd=workdir)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["decision"] == "allow" and d["reasons"][0]["policy"]


def test_check_with_an_asserted_principal_and_a_deny_exits_2(workdir: Path) -> None:
    r = run_cli("check", "--principal", "spiffe://example.org/services/etl", "--action",
                "write", "--resource", 'App::Dataset::"ledger"', cwd=workdir)
    assert r.returncode == 2
    d = json.loads(r.stdout)
    assert d["decision"] == "deny" and d["asserted"] is True


def test_token_refuses_a_foreign_trust_domain(workdir: Path) -> None:
    r = run_cli("token", "--spiffe-id", "spiffe://other.org/x", cwd=workdir)
    assert r.returncode == 1 and r.stderr


def test_schema_prints_the_pdp_namespace(workdir: Path) -> None:
    r = run_cli("schema", cwd=workdir)
    assert "namespace Pdp" in r.stdout and "entity Workload" in r.stdout


def test_coverage_names_untested_policies_and_conditions_and_gates(workdir: Path) -> None:
    full = run_cli("test", "policies", "--coverage", "--min-coverage", "100", cwd=workdir)
    assert full.returncode == 0, full.stdout
    assert "coverage: 100.0%" in full.stdout
    (workdir / "policies" / "extra.cedar").write_text(
        '@id("dataset.audit.read") @reason("Audit jobs read datasets with a purpose.")\n'
        'permit (principal in Pdp::Group::"auditors", action == App::Action::"read", resource)\n'
        'when { context has purpose && context.purpose == "audit" };\n')
    r = run_cli("test", "policies", "--min-coverage", "100", cwd=workdir)
    assert r.returncode == 1
    assert "never decided: dataset.audit.read (extra.cedar)" in r.stdout
    assert "below --min-coverage 100" in r.stdout
    # No case is in this policy's scope, so Cedar never evaluated its conditions.
    assert "never true and false: dataset.audit.read when `context has purpose`" in r.stdout


def test_junit_xml_has_one_testcase_per_case_and_the_failures(workdir: Path) -> None:
    from xml.etree import ElementTree as ET

    (workdir / "policies" / "tests" / "wrong.yaml").write_text(
        "cases:\n  - description: expects the impossible\n"
        "    principal: spiffe://example.org/services/etl\n    action: write\n"
        "    resource: {type: App::Dataset, id: ledger}\n    expect: {decision: allow}\n")
    r = run_cli("test", "policies", "--junit", "out/junit.xml", cwd=workdir)
    assert r.returncode == 1
    root = ET.parse(workdir / "out" / "junit.xml").getroot()
    cases = root.findall(".//testcase")
    passed, failed = (int(x) for x in r.stdout.strip().splitlines()[-1].replace(
        " passed, ", " ").replace(" failed", "").split())
    assert len(cases) == passed + failed and root.get("failures") == "1"
    failure = root.find(".//testsuite[@name='tests/wrong.yaml']/testcase/failure")
    assert failure is not None and "expected allow, got deny" in failure.get("message", "")
