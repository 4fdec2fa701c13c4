"""`pdp test` checks suite files against their schema: a typo fails the run with file and
line, it never crashes and never passes silently."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from pdp.cli.main import app
from tests.conftest import POLICIES


def run_cli(*args: str, cwd: Path) -> Any:
    """In-process (the subprocess start costs seconds each): exit code, stdout, stderr."""
    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        os.chdir(old)
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout,
                           stderr=result.stderr)

CASE = """\
cases:
  - description: the ETL pipeline reads
    principal: spiffe://example.org/services/etl
    action: read
    resource: {{type: App::Dataset, id: sales-daily}}
    {extra}
    expect: {expect}
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(POLICIES, tmp_path / "policies")
    return tmp_path


def _suite(workdir: Path, expect: str, extra: str = "context: {}") -> None:
    (workdir / "policies" / "tests" / "typo.yaml").write_text(
        CASE.format(expect=expect, extra=extra))


@pytest.mark.parametrize(("expect", "extra", "problem"), [
    # the two: a misspelt key crashed with KeyError; an unknown policy id passed
    ("{decison: allow}", "context: {}", "tests/typo.yaml:7: cases.0.expect.decison: unknown key"),
    ("{decision: allow, policies: [nonexistent.policy]}", "context: {}",
     "tests/typo.yaml:7: cases.0.expect.policies.0: unknown policy id 'nonexistent.policy'"),
    ("{decision: allow}", "polices: [dataset.pipelines.read-write]",
     "tests/typo.yaml:6: cases.0.polices: unknown key"),
    ("{decision: maybe}", "context: {}", "tests/typo.yaml:7: cases.0.expect.decision: "),
    ("{decision: allow}", "credential: {age_s: soon}",
     "tests/typo.yaml:6: cases.0.credential.age_s: "),
    ("{decision: allow, reason_code: policy.permitted}", "context: {}",
     "unknown reason code 'policy.permitted'"),
    ("{decision: allow}", "grants: [{template: no.such.template}]",
     "tests/typo.yaml:6: cases.0.grants.0.template: unknown template 'no.such.template'"),
])
def test_a_mistake_in_a_suite_fails_the_run_with_file_and_line(
        workdir: Path, expect: str, extra: str, problem: str) -> None:
    _suite(workdir, expect, extra)
    r = run_cli("test", "policies", cwd=workdir)
    assert r.returncode == 1, r.stdout
    assert "Traceback" not in r.stderr and "passed" not in r.stdout
    assert problem in r.stderr, r.stderr


def test_every_problem_of_every_file_is_reported_at_once(workdir: Path) -> None:
    _suite(workdir, "{decison: allow}")
    (workdir / "policies" / "tests" / "other.yaml").write_text(
        "cases:\n  - principal: spiffe://example.org/services/etl\n    action: 5\n"
        "    resource: {type: App::Dataset, id: x}\n    expect: {decision: allow}\n")
    r = run_cli("test", "policies", cwd=workdir)
    assert r.returncode == 1
    assert "tests/other.yaml:3: cases.0.action: " in r.stderr
    assert "tests/typo.yaml:7: cases.0.expect.decison: unknown key" in r.stderr


def test_a_case_without_an_expectation_is_named(workdir: Path) -> None:
    (workdir / "policies" / "tests" / "typo.yaml").write_text(
        "cases:\n  - principal: spiffe://example.org/services/etl\n    action: read\n"
        "    resource: {type: App::Dataset, id: x}\n")
    r = run_cli("test", "policies", cwd=workdir)
    assert r.returncode == 1 and "tests/typo.yaml:2: cases.0: missing `expect`" in r.stderr


def test_a_correct_suite_still_runs(workdir: Path) -> None:
    _suite(workdir, "{decision: allow, policies: [dataset.pipelines.read-write]}")
    r = run_cli("test", "policies", cwd=workdir)
    assert r.returncode == 0, r.stdout + r.stderr


def test_top_level_x_keys_are_the_authors_own_and_typos_beside_them_still_fail(
        tmp_path: Path) -> None:
    """An `x-` key holds a YAML anchor; it must not be an error, and must not make a
    misspelt key beside it pass."""
    from pdp.authoring.suite_schema import check_suite
    from pdp.engine.bundle import load_bundle

    bundle = load_bundle(POLICIES)
    good = ("x-who: &who {id: spiffe://example.org/services/etl}\n"
            "cases:\n  - principal: *who\n    action: read\n"
            "    resource: {type: App::Dataset, id: sales-daily}\n"
            "    expect: {decision: allow}\n")
    assert check_suite("t.yaml", good, bundle)[1] == []
    bad = good.replace("x-who", "xwho").replace("*who", "*who")
    assert any("xwho: unknown key" in p for p in check_suite("t.yaml", bad, bundle)[1])
