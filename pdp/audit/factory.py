"""Open the decision log that configuration names (``[audit] backend = "sqlite"``).

Backends register here by name, as Cerbos's audit backends do; config
validation (``AuditConfig.backend``) and this table must agree. The spool
(``spool_path``) wraps whichever store was opened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdp.audit.memory import MemoryDecisionLog
from pdp.audit.sqlite import SqliteDecisionLog
from pdp.audit.store import DecisionStore


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """Everything a backend may need; each takes what applies to it."""

    sqlite_path: Path | None = None
    batch_max: int = 512
    synchronous: str = "FULL"
    busy_timeout_ms: int = 5000
    postgres_dsn: str | None = None
    commit_timeout_s: float | None = None  # None: callers wait for the store however long


def _sqlite(o: BackendOptions) -> DecisionStore:
    if o.sqlite_path is None:
        raise ValueError("the sqlite decision log needs sqlite_path")
    return SqliteDecisionLog(o.sqlite_path, batch_max=o.batch_max, synchronous=o.synchronous,
                             busy_timeout_ms=o.busy_timeout_ms,
                             commit_timeout_s=o.commit_timeout_s)


def _memory(o: BackendOptions) -> DecisionStore:
    return MemoryDecisionLog()


def _postgres(o: BackendOptions) -> DecisionStore:
    if not o.postgres_dsn:
        raise ValueError("the postgres decision log needs postgres_dsn "
                         "([audit] postgres_dsn or PDP_AUDIT__POSTGRES_DSN)")
    from pdp.audit.postgres import PostgresDecisionLog  # psycopg only when asked for

    return PostgresDecisionLog(o.postgres_dsn, batch_max=o.batch_max,
                               commit_timeout_s=o.commit_timeout_s)


BACKENDS: dict[str, Callable[[BackendOptions], DecisionStore]] = {
    "sqlite": _sqlite,
    "memory": _memory,
    "postgres": _postgres,
}


def open_decision_log(backend: str, *, sqlite_path: Path | None = None, batch_max: int = 512,
                      synchronous: str = "FULL", busy_timeout_ms: int = 5000,
                      postgres_dsn: str | None = None,
                      spool_path: Path | None = None,
                      commit_timeout_s: float | None = None) -> DecisionStore:
    """Open the named store: ``"sqlite"`` (the default for ``pdp serve``; needs
    ``sqlite_path``), ``"postgres"`` (several replicas; needs ``postgres_dsn``)
    or ``"memory"`` (tests, ``pdp check``). With ``spool_path``, the store is
    wrapped in a :class:`~pdp.audit.spool.SpoolingLog`. ``commit_timeout_s``
    bounds every append (:mod:`pdp.audit.groupcommit`).

    The result is both a ``DecisionLog`` and a ``QueryableLog``. Raises
    ``ValueError`` for an unknown name, listing the known ones, and
    ``AuditUnavailable`` when the store cannot be opened.
    """
    try:
        opener = BACKENDS[backend]
    except KeyError:
        raise ValueError(f"unknown decision log backend {backend!r}; "
                         f"choose one of: {', '.join(sorted(BACKENDS))}") from None
    store = opener(BackendOptions(sqlite_path=sqlite_path, batch_max=batch_max,
                                  synchronous=synchronous, busy_timeout_ms=busy_timeout_ms,
                                  postgres_dsn=postgres_dsn,
                                  commit_timeout_s=commit_timeout_s))
    if spool_path is None:
        return store
    from pdp.audit.spool import SpoolingLog

    try:
        return SpoolingLog(store, spool_path)
    except BaseException:
        store.close()
        raise


def open_configured_log(settings: Any, *, spool: bool = True) -> DecisionStore:
    """The store ``settings.audit`` names, opened as ``pdp serve`` opens it.

    ``spool=False`` leaves the spool out (reading tools: ``pdp audit ...``).
    """
    audit = settings.audit
    dsn = audit.postgres_dsn  # [audit] durability: SQLite's is `synchronous` (pdp.config)
    if dsn is not None:
        dsn = with_synchronous_commit(dsn, "on" if audit.durability == "power" else "off")
    return open_decision_log(
        audit.backend, sqlite_path=settings.sqlite_path, batch_max=audit.batch_max,
        synchronous=audit.synchronous, busy_timeout_ms=audit.busy_timeout_ms,
        postgres_dsn=dsn, spool_path=audit.spool_path if spool else None,
        commit_timeout_s=audit.commit_timeout_s)


def with_synchronous_commit(dsn: str, level: str) -> str:
    """``dsn`` whose sessions run with ``synchronous_commit = level``, added to any
    ``options`` it has (e.g. a ``search_path``). ``off``: a commit is acknowledged before
    its WAL reaches disk; a PostgreSQL crash may lose the last ones, never the chain."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(dsn)
    options = f"{params.get('options') or ''} -c synchronous_commit={level}".strip()
    return make_conninfo(dsn, options=options)


__all__ = ["BACKENDS", "BackendOptions", "open_configured_log", "open_decision_log"]
