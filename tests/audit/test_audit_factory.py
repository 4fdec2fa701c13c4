"""Choosing a store by name, and the package's public names."""

from __future__ import annotations

from pathlib import Path

import pytest

import pdp.audit
from pdp.audit import (
    DecisionLog,
    MemoryDecisionLog,
    QueryableLog,
    SqliteDecisionLog,
    open_decision_log,
)


def test_memory_backend_by_name() -> None:
    log = open_decision_log("memory")
    assert isinstance(log, MemoryDecisionLog)
    assert isinstance(log, DecisionLog) and isinstance(log, QueryableLog)


def test_sqlite_backend_by_name_uses_the_given_path(tmp_path: Path) -> None:
    log = open_decision_log("sqlite", sqlite_path=tmp_path / "d.db", batch_max=64)
    try:
        assert isinstance(log, SqliteDecisionLog)
        assert log.path == tmp_path / "d.db" and log.batch_max == 64
    finally:
        log.close()


def test_sqlite_backend_without_a_path_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="sqlite_path"):
        open_decision_log("sqlite")


def test_unknown_backend_names_the_choices() -> None:
    with pytest.raises(ValueError, match="memory, postgres, sqlite"):
        open_decision_log("cassandra")


def test_every_exported_name_exists() -> None:
    assert sorted(pdp.audit.__all__) == sorted(set(pdp.audit.__all__))
    for name in pdp.audit.__all__:
        assert getattr(pdp.audit, name) is not None
