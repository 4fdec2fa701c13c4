"""`pdp audit ...`: the offline auditor tools, on a real SQLite log and bundle archive."""

from __future__ import annotations

import csv
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pdp.audit import SqliteDecisionLog, rollups
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


def _tamper_rollup(state: Path) -> str:
    """Catch the rollup up, then lower one hour's allow count behind the log's back."""
    log = SqliteDecisionLog(state / "decisions.db")
    try:
        rollups.catch_up_store(log)
    finally:
        log.close()
    with closing(sqlite3.connect(state / "decisions.db")) as conn:
        hour = str(conn.execute("SELECT max(hour) FROM overview_hourly").fetchone()[0])
        conn.execute("UPDATE overview_hourly SET allow = allow - 1 WHERE hour = ?", (hour,))
        conn.commit()
    return hour


def test_verify_fails_on_an_edited_rollup_and_rebuild_rollups_repairs_it(logged) -> None:
    assert "hourly rollups" not in run(logged, "verify").stdout  # none built yet
    hour = _tamper_rollup(logged["state"])
    broken = run(logged, "verify")
    assert broken.exit_code == 1
    assert "chain intact" in broken.stdout and hour in broken.stdout
    assert "pdp audit rebuild-rollups" in broken.stdout
    report = json.loads(run(logged, "verify", "--json").stdout)
    assert report["problem"] == "rollup mismatch" and report["rollups"]["differing_hours"] == 1
    repaired = run(logged, "rebuild-rollups")
    assert repaired.exit_code == 0 and "they match the log" in repaired.stdout
    intact = run(logged, "verify")
    assert intact.exit_code == 0 and "hourly rollups match the log" in intact.stdout


def test_rebuild_rollups_refuses_a_log_whose_chain_is_broken(logged) -> None:
    """Rebuilding from rewritten rows would launder the rewrite into the charts."""
    _tamper_rollup(logged["state"])
    with closing(sqlite3.connect(logged["state"] / "decisions.db")) as conn:
        conn.execute("UPDATE decisions SET decision = 'allow' WHERE decision = 'deny'")
        conn.commit()
    refused = run(logged, "rebuild-rollups")
    assert refused.exit_code == 1 and "chain does not verify" in refused.output
    with closing(sqlite3.connect(logged["state"] / "decisions.db")) as conn:
        stored = conn.execute("SELECT sum(allow) FROM overview_hourly").fetchone()[0]
    assert stored == 0  # still the tampered figure (1 allow - 1): nothing was rebuilt
