"""Open the decision log that configuration names (``[audit] backend = "sqlite"``).

Backends register here by name, as Cerbos's audit backends do, so adding
PostgreSQL is one entry; config validation and this table must agree.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pdp.audit.memory import MemoryDecisionLog
from pdp.audit.sqlite import SqliteDecisionLog
from pdp.audit.store import DecisionStore


def _sqlite(sqlite_path: Path | None, batch_max: int) -> DecisionStore:
    if sqlite_path is None:
        raise ValueError("the sqlite decision log needs sqlite_path")
    return SqliteDecisionLog(sqlite_path, batch_max=batch_max)


def _memory(sqlite_path: Path | None, batch_max: int) -> DecisionStore:
    return MemoryDecisionLog()


BACKENDS: dict[str, Callable[[Path | None, int], DecisionStore]] = {
    "sqlite": _sqlite,
    "memory": _memory,
}


def open_decision_log(backend: str, *, sqlite_path: Path | None = None,
                      batch_max: int = 512) -> DecisionStore:
    """Open the named store: ``"sqlite"`` (the default for ``pdp serve``; needs
    ``sqlite_path``) or ``"memory"`` (tests, ``pdp check``).

    The result is both a ``DecisionLog`` and a ``QueryableLog``. Raises
    ``ValueError`` for an unknown name, listing the known ones, and
    ``AuditUnavailable`` when the store cannot be opened.
    """
    try:
        opener = BACKENDS[backend]
    except KeyError:
        raise ValueError(f"unknown decision log backend {backend!r}; "
                         f"choose one of: {', '.join(sorted(BACKENDS))}") from None
    return opener(sqlite_path, batch_max)


__all__ = ["BACKENDS", "open_decision_log"]
