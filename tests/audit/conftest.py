"""Records and stores shared by the decision-log tests.

Store tests run against every backend: in memory, SQLite and PostgreSQL. The
PostgreSQL ones use the real server (``PDP_TEST_POSTGRES_DSN``, default
``postgresql://postgres@127.0.0.1:5432/test``), each test in a schema of its
own that is dropped afterwards, so parallel runs never meet. Without a server
they skip (and fail under ``PDP_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import uuid_utils

from pdp.audit import MemoryDecisionLog, SqliteDecisionLog
from pdp.audit.store import DecisionStore
from tests.audit.pgschema import postgres_schema, require_postgres

T0 = datetime(2026, 11, 23, 13, 0, 0, tzinfo=UTC)

MakeRecord = Callable[..., dict[str, Any]]


def at(seconds: float) -> str:
    """The record timestamp ``seconds`` after T0, in the wire format."""
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def make_record() -> MakeRecord:
    """Builds decision records shaped like pdp.decision's, one second apart."""
    clock = count()

    def make(**overrides: Any) -> dict[str, Any]:
        policy = overrides.pop("policy", "allow-readers")
        decision = overrides.get("decision", "allow")
        record: dict[str, Any] = {
            "decision_id": str(uuid_utils.uuid7()),
            "kind": "decision",
            "timestamp": at(next(clock)),
            "instance": "pdp-1:4242",
            "request_id": "req-1",
            "pep": "gateway",
            "principal": "spiffe://example.org/agent",
            "credential": {"issuer": "spiffe://example.org", "kind": "jwt-svid",
                           "jti": "j-1", "serial": None, "sha256": "ab" * 32},
            "action": 'App::Action::"read"',
            "resource": 'App::Dataset::"sales"',
            "request": {"context": {"ip": "10.0.0.1", "note": "naïve ☃"}},
            "live": {"incident": False, "risk_level": 0},
            "policy_version": {"commit": "c0ffee", "sha256": "cd" * 32},
            "decision": decision,
            "reasons": [{"policy": policy, "effect": "permit" if decision == "allow"
                         else "forbid", "message": "because"}],
            "reason_codes": ["policy.permit" if decision == "allow" else "policy.forbid"],
            "errors": [],
            "explanation": "readers may read",
            "latency_us": 120,
        }
        record.update(overrides)
        return record

    return make


@pytest.fixture
def make_admin_event() -> Callable[..., dict[str, Any]]:
    def make(**overrides: Any) -> dict[str, Any]:
        event: dict[str, Any] = {
            "decision_id": str(uuid_utils.uuid7()), "kind": "admin", "timestamp": at(10_000),
            "instance": "pdp-1:4242", "event": "bundle.reload", "detail": {"commit": "c0ffee"},
            "principal": None, "action": None, "resource": None, "decision": None,
            "reasons": [], "reason_codes": [], "errors": [],
        }
        event.update(overrides)
        return event

    return make


def open_store(kind: str, path: Path, dsn: str | None = None) -> DecisionStore:
    if kind == "memory":
        return MemoryDecisionLog()
    if kind == "postgres":
        from pdp.audit.postgres import PostgresDecisionLog

        assert dsn is not None
        return PostgresDecisionLog(dsn)
    return SqliteDecisionLog(path / "decisions.db")


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A DSN whose search_path is a fresh schema, dropped after the test."""
    require_postgres()
    with postgres_schema() as dsn:
        yield dsn


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DecisionStore]:
    """Each behaviour test runs against every store: they must answer alike."""
    if request.param == "postgres":
        dsn = request.getfixturevalue("pg_dsn")
        log = open_store("postgres", tmp_path, dsn)
    else:
        log = open_store(request.param, tmp_path)
    yield log
    log.close()


@pytest.fixture
def sqlite_log(tmp_path: Path) -> Iterator[SqliteDecisionLog]:
    log = SqliteDecisionLog(tmp_path / "decisions.db")
    yield log
    log.close()


@pytest.fixture(params=["sqlite", "postgres"])
def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DecisionStore]:
    """The stores with tables (checkpoints, retention, tampering by SQL)."""
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgres" else None
    log = open_store(request.param, tmp_path, dsn)
    yield log
    log.close()
