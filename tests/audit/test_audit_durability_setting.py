"""``[audit] durability`` (issue 16) reaches the connection that commits the decision log:
read back from SQLite (``PRAGMA synchronous``) and from the real PostgreSQL
(``SHOW synchronous_commit``), not taken from the settings object."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pdp.audit.factory import open_configured_log
from pdp.config import load_settings
from tests.audit.pgschema import postgres_schema, require_postgres

SQLITE_LEVEL = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}  # what the pragma reads back


@pytest.mark.parametrize(("audit", "expected", "synced_after_turn"), [
    # FULL: a log opens in SQLite's regime (it syncs in its commit); while another process
    # appends it commits at NORMAL and fdatasyncs the -wal after its turn
    # (tests/audit/test_audit_wal_sync.py proves each, before every answer).
    ({}, "FULL", True),  # the default is power
    ({"durability": "power"}, "FULL", True),
    ({"durability": "process"}, "NORMAL", False),
    ({"durability": "process", "synchronous": "FULL"}, "FULL", True),  # more is allowed
    ({"durability": "power", "synchronous": "EXTRA"}, "EXTRA", False),  # SQLite's own sync
])
def test_sqlite_commits_at_the_level_durability_chose(tmp_path: Path, audit: dict[str, str],
                                                      expected: str,
                                                      synced_after_turn: bool) -> None:
    settings = load_settings(None, state_dir=tmp_path, dev=True, audit=audit)
    log = open_configured_log(settings, spool=False)
    try:
        conn = log._conn  # type: ignore[attr-defined]  # the writer's own connection
        assert conn is not None
        assert SQLITE_LEVEL[conn.execute("PRAGMA synchronous").fetchone()[0]] == expected
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert (log.regime is not None) is synced_after_turn  # type: ignore[attr-defined]
        assert (log._wal is not None) is synced_after_turn  # type: ignore[attr-defined]
    finally:
        log.close()


@pytest.mark.parametrize("synchronous", ["NORMAL", "OFF"])
def test_a_pragma_weaker_than_power_is_a_configuration_error(tmp_path: Path,
                                                             synchronous: str) -> None:
    with pytest.raises(ValidationError, match="does not survive power loss"):
        load_settings(None, state_dir=tmp_path, audit={"durability": "power",
                                                        "synchronous": synchronous})


def test_an_unknown_durability_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="durability"):
        load_settings(None, state_dir=tmp_path, audit={"durability": "disk"})


@pytest.mark.parametrize(("durability", "expected"), [("power", "on"), ("process", "off")])
def test_postgres_sessions_run_with_the_synchronous_commit_durability_chose(
        tmp_path: Path, durability: str, expected: str) -> None:
    require_postgres()
    with postgres_schema() as dsn:  # its search_path option must survive the added one
        settings = load_settings(None, state_dir=tmp_path, audit={
            "backend": "postgres", "postgres_dsn": dsn, "durability": durability})
        log = open_configured_log(settings, spool=False)
        try:
            conn = log._conn  # type: ignore[attr-defined]  # the writer's own connection
            assert conn is not None
            assert conn.execute("SHOW synchronous_commit").fetchone()[0] == expected
            schema = conn.execute("SELECT current_schema()").fetchone()[0]
            assert schema is not None and schema.startswith("pdp_test")
        finally:
            log.close()
