"""`pdp audit ...`: the offline auditor tools, on a real SQLite log and bundle archive."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pdp.cli.main import app
from pdp.components import build_components
from pdp.decision.model import AuthorizeInput, ResourceRef
from pdp.identity.model import BearerToken

ETL = "spiffe://example.org/services/etl"


@pytest.fixture
def logged(settings_for) -> dict[str, Any]:
    """A state dir whose log holds an allow and a deny of the ETL pipeline (server stopped)."""
    settings = settings_for()
    components = build_components(settings)
    try:
        token = components.dev_issuer.mint(ETL)

        def ask(action: str, rid: str) -> str:
            return components.service.authorize_sync(AuthorizeInput(
                credential=BearerToken(token), action=action,
                resource=ResourceRef("App::Dataset", rid), pep="cli")).decision_id

        ids = {"allow": ask("read", "sales-daily"), "deny": ask("write", "ledger")}
    finally:
        components.close()
    return {"state": settings.state_dir, "policies": settings.policies, **ids}


def run(logged: dict[str, Any], *args: str) -> Any:
    result = CliRunner().invoke(app, ["audit", *args, "--state-dir", str(logged["state"])],
                                env={"PDP_POLICIES": str(logged["policies"])})
    return result


def test_query_finds_decisions_by_filter_as_json_lines(logged) -> None:
    result = run(logged, "query", "--principal", ETL, "--action", "write", "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["decision_id"] for r in records] == [logged["deny"]]


def test_query_prints_a_table_and_csv(logged) -> None:
    table = run(logged, "query", "--decision", "allow")
    assert table.exit_code == 0 and "dataset.pipelines" in table.stdout
    as_csv = run(logged, "query", "--kind", "decision", "--csv")
    rows = list(csv.DictReader(as_csv.stdout.splitlines()))
    assert {row["decision_id"] for row in rows} == {logged["allow"], logged["deny"]}


def test_show_prints_the_explanation_and_the_policy_text(logged) -> None:
    result = run(logged, "show", logged["allow"])
    assert result.exit_code == 0, result.output
    assert "Allowed by policy dataset.pipelines.read-write" in result.stdout
    assert 'principal in Pdp::Group::"pipelines"' in result.stdout
    as_json = json.loads(run(logged, "show", logged["allow"], "--json").stdout)
    assert as_json["determining_policies"][0]["text"].count("permit (") == 1


def test_show_of_an_unknown_id_fails(logged) -> None:
    result = run(logged, "show", "nope")
    assert result.exit_code == 1 and "no decision with id nope" in result.output


def test_replay_reproduces_and_exits_0(logged) -> None:
    result = run(logged, "replay", logged["deny"], "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["reproduced"] is True and report["would_change"] is False
    assert "REPRODUCED" in run(logged, "replay", logged["deny"]).stdout


def test_verify_says_intact_and_exits_0(logged) -> None:
    result = run(logged, "verify")
    assert result.exit_code == 0 and result.stdout.startswith("ok:")
    assert json.loads(run(logged, "verify", "--json").stdout)["ok"] is True


def test_export_writes_csv_to_a_file(logged, tmp_path: Path) -> None:
    out = tmp_path / "export.csv"
    result = run(logged, "export", "--format", "csv", "--kind", "decision", "-o", str(out))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert [row["decision_id"] for row in rows] == [logged["allow"], logged["deny"]]
    jsonl = run(logged, "export")
    assert [json.loads(line)["seq"] for line in jsonl.stdout.splitlines()][:2] == [1, 2]


def test_verify_checks_an_export_file_and_names_the_line_that_was_edited(
        logged, tmp_path: Path) -> None:
    out = tmp_path / "export.jsonl"
    assert run(logged, "export", "-o", str(out)).exit_code == 0
    lines = out.read_text(encoding="utf-8").split("\n")
    intact = run(logged, "verify", "--export", str(out))
    assert intact.exit_code == 0 and intact.stdout.startswith(f"ok: {len(lines) - 1} records")
    [at] = [i for i, line in enumerate(lines) if logged["deny"] in line]
    lines[at] = lines[at].replace('"decision":"deny"', '"decision":"allow"', 1)
    out.write_text("\n".join(lines), encoding="utf-8")
    broken = run(logged, "verify", "--export", str(out), "--json")
    assert broken.exit_code == 1
    report = json.loads(broken.stdout)
    assert (report["problem"], report["first_broken_seq"]) == ("hash mismatch", at + 1)
    assert report["first_broken_decision_id"] == logged["deny"]
    missing = run(logged, "verify", "--export", str(tmp_path / "none.jsonl"))
    assert missing.exit_code == 1 and "cannot read" in missing.output


def test_identities_lists_the_principals(logged) -> None:
    result = run(logged, "identities", "--long-lived-s", "60", "--json")
    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.stdout)["identities"]
    assert entry["principal"] == ETL and entry["requests"] == 2 and entry["denies"] == 1
    assert entry["flags"] == ["long_lived"]
    assert "1 identities" in run(logged, "identities").stdout


def test_a_missing_log_is_reported_not_created(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["audit", "verify", "--state-dir", str(tmp_path / "none")])
    assert result.exit_code == 1 and "no decision log" in result.output
    assert not (tmp_path / "none" / "decisions.db").exists()
