"""The durable copy of what administrators set: revocations, incidents, risk levels, grants.

Live context is read from memory (or Redis) on the hot path, but none of it may
be lost to a restart: a revocation forgotten by a restarted PDP is an allow
that should have been a deny. So every administrative change is first
committed here, in the decision log's own store (the same SQLite file or
PostgreSQL schema, which is already durable and shared by every replica),
and only then acknowledged. Replicas load it at start, poll its ``version``
and reload when it moves; Redis, when configured, is only fan-out and cache
(see ``context.durable``).

Rows are ``(topic, key) -> body`` (JSON text, as the context layer encodes it)::

    revocations   rev-<16 hex>          context.revocations.RevocationEntry
    context       incident:<id>         context.state.Incident
    context       risk:global           context.state.RiskEntry
    context       risk:principal:<id>   context.state.RiskEntry (set by an administrator)
    grants        <grant id>            pdp.engine.grants.Grant

One counter, ``version``, grows with every committed change, and ``epoch`` names
the store (created with the tables): ``(epoch, version)`` identifies a state
exactly, which is what a Redis cache records to know whether it is current.
The tables come with the log's schema migrations (SQLite version 5,
PostgreSQL version 3).
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

# The data and the contract are the live context's (context.admin_store); the stores are here.
from context.admin_store import AdminSnapshot, AdminStateStore, AdminWrite
from pdp.audit.errors import AuditUnavailable

TOPICS = ("revocations", "context", "grants")


class MemoryAdminState:
    """Held in this process: what ``audit.backend = "memory"`` gets. Not durable."""

    source = "memory"
    durable = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._epoch = secrets.token_hex(4)
        self._version = 0
        self._rows: dict[str, dict[str, str]] = {}

    def load(self) -> AdminSnapshot:
        with self._lock:
            return AdminSnapshot(self._epoch, self._version,
                                 {t: dict(r) for t, r in self._rows.items()})

    def version(self) -> tuple[str, int]:
        return self._epoch, self._version

    def write(self, topic: str, puts: Mapping[str, str] = {}, deletes: Collection[str] = (),
              *, only_new: bool = False) -> AdminWrite:
        with self._lock:
            rows = self._rows.setdefault(topic, {})
            before = {k: rows.get(k) for k in (*puts, *deletes)}
            changed = _changes(before, puts, deletes, only_new=only_new)
            for key, body in changed.items():
                if body is None:
                    del rows[key]
                else:
                    rows[key] = body
            self._version += bool(changed)
            return AdminWrite(self._version, before)

    def close(self) -> None:
        pass


class SqliteAdminState:
    """The rows in the SQLite decision log's file, on a connection of their own.

    WAL lets this connection and the log's writer work side by side; each
    write is one ``BEGIN IMMEDIATE ... COMMIT`` at the log's ``synchronous``
    level, so an acknowledged change survives ``kill -9`` (and, with FULL,
    power loss).
    """

    durable = True

    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000,
                 synchronous: str = "FULL") -> None:
        from pdp.audit.sqlite_schema import connect, migrate

        self.source = f"sqlite:{path}"
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = connect(path, busy_timeout_ms=busy_timeout_ms,
                                 synchronous=synchronous, writer=True)
            migrate(self._conn)
        except sqlite3.Error as e:
            raise AuditUnavailable(f"cannot open the admin state in {path}: {e}") from e

    def load(self) -> AdminSnapshot:
        with self._guard():
            self._conn.execute("BEGIN")
            try:
                epoch, version = self._meta()
                rows = self._conn.execute("SELECT topic, key, body FROM admin_state").fetchall()
            finally:
                self._conn.execute("COMMIT")
        return _snapshot(epoch, version, rows)

    def version(self) -> tuple[str, int]:
        with self._guard():
            return self._meta()

    def write(self, topic: str, puts: Mapping[str, str] = {}, deletes: Collection[str] = (),
              *, only_new: bool = False) -> AdminWrite:
        from pdp.audit.sqlite_schema import rollback_quietly

        keys = [*puts, *deletes]
        with self._guard():
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                before = {k: _one(conn.execute(
                    "SELECT body FROM admin_state WHERE topic = ? AND key = ?", (topic, k)))
                    for k in keys}
                changed = _changes(before, puts, deletes, only_new=only_new)
                for key, body in changed.items():
                    if body is None:
                        conn.execute("DELETE FROM admin_state WHERE topic = ? AND key = ?",
                                     (topic, key))
                    else:
                        conn.execute("INSERT INTO admin_state (topic, key, body) VALUES (?, ?, ?)"
                                     " ON CONFLICT (topic, key) DO UPDATE SET body = excluded.body",
                                     (topic, key, body))
                if changed:
                    conn.execute("UPDATE admin_state_meta SET version = version + 1 WHERE id = 1")
                version = self._meta()[1]
                conn.execute("COMMIT")
            except BaseException:
                rollback_quietly(conn)
                raise
        return AdminWrite(version, before)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _meta(self) -> tuple[str, int]:
        row = self._conn.execute("SELECT epoch, version FROM admin_state_meta WHERE id = 1"
                                 ).fetchone()
        return (str(row[0]), int(row[1])) if row is not None else ("", 0)

    def _guard(self) -> _Guard:
        return _Guard(self._lock, sqlite3.Error, self.source)


class _Guard:
    """Hold ``lock``; turn the backend's errors into ``AuditUnavailable``."""

    def __init__(self, lock: threading.Lock,
                 errors: type[BaseException] | tuple[type[BaseException], ...],
                 source: str) -> None:
        self.lock, self.errors, self.source = lock, errors, source

    def __enter__(self) -> None:
        self.lock.acquire()

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        self.lock.release()
        if exc is not None and isinstance(exc, self.errors):
            raise AuditUnavailable(f"the admin state in {self.source} is unavailable: "
                                   f"{exc}") from exc


def _one(cursor: Any) -> str | None:
    row = cursor.fetchone()
    return str(row[0]) if row is not None else None


def _changes(before: Mapping[str, str | None], puts: Mapping[str, str],
             deletes: Collection[str], *, only_new: bool) -> dict[str, str | None]:
    """``key -> new body`` (None: delete) for the rows that actually change."""
    out: dict[str, str | None] = {}
    for key, body in puts.items():
        if before[key] == body or (only_new and before[key] is not None):
            continue
        out[key] = body
    for key in deletes:
        if before[key] is not None and key not in puts:
            out[key] = None
    return out


def _snapshot(epoch: str, version: int, rows: Collection[tuple[str, str, str]]) -> AdminSnapshot:
    topics: dict[str, dict[str, str]] = {}
    for topic, key, body in rows:
        topics.setdefault(str(topic), {})[str(key)] = str(body)
    return AdminSnapshot(epoch, version, topics)


def open_admin_state(settings: Any) -> AdminStateStore:
    """The admin state beside the log ``settings.audit`` names (``"memory"``: in process)."""
    audit = settings.audit
    if audit.backend == "sqlite":
        return SqliteAdminState(settings.sqlite_path, busy_timeout_ms=audit.busy_timeout_ms,
                                synchronous=audit.synchronous)
    if audit.backend == "postgres":
        from pdp.audit.admin_state_postgres import PostgresAdminState

        return PostgresAdminState(audit.postgres_dsn)
    return MemoryAdminState()


__all__ = ["TOPICS", "AdminSnapshot", "AdminStateStore", "AdminWrite", "MemoryAdminState",
           "SqliteAdminState", "open_admin_state"]
