"""Open the decision log that configuration names (``[audit] backend = "sqlite"``),
and the durable admin state beside it.

Backends register here by name, as Cerbos's audit backends do; each lives
in a folder of its own (``pdp/audit/sqlite``, ``pdp/audit/postgres``,
``pdp/audit/memory``), so adding a store means adding a folder and a line
to :data:`BACKENDS`. A folder's ``settings.py`` holds the ``[audit]`` keys
its store reads (``SqliteSettings``, ``PostgresSettings``) and opens both the
log and the admin state beside it: a :class:`Backend`. Config validation
(``AuditConfig.backend``) and this table must agree. The spool
(``spool_path``) wraps whichever store was opened.

The PostgreSQL modules are imported only when that backend is asked for:
``psycopg`` is an optional dependency (``pip install pdp[postgres]``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pdp.audit.admin_state import AdminStateStore
from pdp.audit.chain.spool import SpoolingLog
from pdp.audit.console_sessions import SessionRows
from pdp.audit.memory.admin_state import MemoryAdminState
from pdp.audit.memory.console_sessions import MemorySessionRows
from pdp.audit.memory.log import MemoryDecisionLog
from pdp.audit.sqlite.settings import SqliteSettings
from pdp.audit.store import DecisionStore


class Backend(Protocol):
    """A configured store: opens the decision log, and the admin state beside it."""

    def open_log(self, *, batch_max: int, commit_timeout_s: float | None) -> DecisionStore:
        """The log; ``batch_max`` and ``commit_timeout_s`` shape its group commit."""
        ...

    def open_admin_state(self) -> AdminStateStore:
        """The durable admin state in the same store."""
        ...

    def open_console_sessions(self) -> SessionRows:
        """The console's sessions in the same store (:mod:`pdp.audit.console_sessions`)."""
        ...


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """The ``[audit]`` keys a backend may read; each takes what applies to it."""

    sqlite_path: Path | None = None
    synchronous: str = "FULL"
    busy_timeout_ms: int = 5000
    postgres_dsn: str | None = None


class InMemory:
    """The ``memory`` backend: nothing to configure, nothing kept after the process."""

    def open_log(self, *, batch_max: int, commit_timeout_s: float | None) -> DecisionStore:
        return MemoryDecisionLog()

    def open_admin_state(self) -> AdminStateStore:
        return MemoryAdminState()

    def open_console_sessions(self) -> SessionRows:
        return MemorySessionRows()


def _sqlite(o: BackendOptions) -> Backend:
    if o.sqlite_path is None:
        raise ValueError("the sqlite decision log needs sqlite_path")
    return SqliteSettings(o.sqlite_path, synchronous=o.synchronous,
                          busy_timeout_ms=o.busy_timeout_ms)


def _postgres(o: BackendOptions) -> Backend:
    if not o.postgres_dsn:
        raise ValueError("the postgres decision log needs postgres_dsn "
                         "([audit] postgres_dsn or PDP_AUDIT__POSTGRES_DSN)")
    from pdp.audit.postgres.settings import PostgresSettings  # psycopg: see the module's doc

    return PostgresSettings(o.postgres_dsn)


BACKENDS: dict[str, Callable[[BackendOptions], Backend]] = {
    "sqlite": _sqlite,
    "memory": lambda o: InMemory(),
    "postgres": _postgres,
}


def configured_backend(name: str, options: BackendOptions) -> Backend:
    """The backend registered as ``name``, configured from ``options``.

    Raises ``ValueError`` for an unknown name (listing the known ones) or a
    missing option.
    """
    try:
        configure = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown decision log backend {name!r}; "
                         f"choose one of: {', '.join(sorted(BACKENDS))}") from None
    return configure(options)


def open_decision_log(backend: str, *, sqlite_path: Path | None = None, batch_max: int = 512,
                      synchronous: str = "FULL", busy_timeout_ms: int = 5000,
                      postgres_dsn: str | None = None,
                      spool_path: Path | None = None,
                      commit_timeout_s: float | None = None) -> DecisionStore:
    """Open the named store: ``"sqlite"`` (the default for ``pdp serve``; needs
    ``sqlite_path``), ``"postgres"`` (several replicas; needs ``postgres_dsn``)
    or ``"memory"`` (tests, ``pdp check``). With ``spool_path``, the store is
    wrapped in a :class:`~pdp.audit.chain.spool.SpoolingLog`. ``commit_timeout_s``
    bounds every append (:mod:`pdp.audit.chain.groupcommit`).

    The result is both a ``DecisionLog`` and a ``QueryableLog``. Raises
    ``ValueError`` for an unknown name, listing the known ones, and
    ``AuditUnavailable`` when the store cannot be opened.
    """
    options = BackendOptions(sqlite_path=sqlite_path, synchronous=synchronous,
                             busy_timeout_ms=busy_timeout_ms, postgres_dsn=postgres_dsn)
    store = configured_backend(backend, options).open_log(batch_max=batch_max,
                                                          commit_timeout_s=commit_timeout_s)
    if spool_path is None:
        return store
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


def open_admin_state(settings: Any) -> AdminStateStore:
    """The admin state beside the log ``settings.audit`` names: the same SQLite file
    or PostgreSQL schema (``"memory"``: held in this process)."""
    audit = settings.audit
    options = BackendOptions(sqlite_path=settings.sqlite_path, synchronous=audit.synchronous,
                             busy_timeout_ms=audit.busy_timeout_ms,
                             postgres_dsn=audit.postgres_dsn)
    return configured_backend(audit.backend, options).open_admin_state()


def open_console_sessions(settings: Any) -> SessionRows:
    """The console's sessions beside the log ``settings.audit`` names, shared by every
    worker and replica of that store (``"memory"``: held in this process)."""
    audit = settings.audit
    options = BackendOptions(sqlite_path=settings.sqlite_path, synchronous=audit.synchronous,
                             busy_timeout_ms=audit.busy_timeout_ms,
                             postgres_dsn=audit.postgres_dsn)
    return configured_backend(audit.backend, options).open_console_sessions()


def with_synchronous_commit(dsn: str, level: str) -> str:
    """``dsn`` whose sessions run with ``synchronous_commit = level``, added to any
    ``options`` it has (e.g. a ``search_path``). ``off``: a commit is acknowledged before
    its WAL reaches disk; a PostgreSQL crash may lose the last ones, never the chain."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(dsn)
    options = f"{params.get('options') or ''} -c synchronous_commit={level}".strip()
    return make_conninfo(dsn, options=options)


__all__ = ["BACKENDS", "Backend", "BackendOptions", "InMemory", "configured_backend",
           "open_admin_state", "open_configured_log", "open_console_sessions", "open_decision_log",
           "with_synchronous_commit"]
