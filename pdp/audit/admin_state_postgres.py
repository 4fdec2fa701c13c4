"""The durable admin state (:mod:`pdp.audit.admin_state`) in the log's PostgreSQL schema.

Every replica reads and writes the same rows, so this is also how they agree:
writers serialize on the ``admin_state_meta`` row (``SELECT ... FOR UPDATE``),
and a replica that sees ``version`` move reloads. One connection per process,
reopened after an error; a call that fails raises ``AuditUnavailable`` and
changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from typing import Any

import psycopg

from pdp.audit.admin_state import AdminSnapshot, AdminWrite, _changes, _Guard, _snapshot
from pdp.audit.postgres import lock_key, migrate


class PostgresAdminState:
    """:class:`~pdp.audit.admin_state.AdminStateStore` in PostgreSQL (``dsn`` as for the log)."""

    source = "postgres"
    durable = True

    def __init__(self, dsn: str | None, *, connect_timeout_s: int = 5) -> None:
        if not dsn:
            raise ValueError("the postgres admin state needs postgres_dsn")
        self.dsn = dsn
        self.connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        with self._guard():
            conn = self._connection()
            migrate(conn, lock_key(conn))  # the log's migrations create the tables

    def load(self) -> AdminSnapshot:
        with self._guard():
            conn = self._connection()
            with conn.transaction():
                epoch, version = self._meta(conn)
                rows = conn.execute("SELECT topic, key, body FROM admin_state").fetchall()
        return _snapshot(epoch, version, rows)

    def version(self) -> tuple[str, int]:
        with self._guard():
            return self._meta(self._connection())

    def write(self, topic: str, puts: Mapping[str, str] = {}, deletes: Collection[str] = (),
              *, only_new: bool = False) -> AdminWrite:
        keys = [*puts, *deletes]
        with self._guard():
            conn = self._connection()
            with conn.transaction():
                # One writer at a time across replicas: the version counts changes exactly.
                conn.execute("SELECT version FROM admin_state_meta WHERE id = 1 FOR UPDATE")
                found = dict(conn.execute(
                    "SELECT key, body FROM admin_state WHERE topic = %s AND key = ANY(%s)",
                    (topic, keys)).fetchall())
                before = {k: found.get(k) for k in keys}
                changed = _changes(before, puts, deletes, only_new=only_new)
                for key, body in changed.items():
                    if body is None:
                        conn.execute("DELETE FROM admin_state WHERE topic = %s AND key = %s",
                                     (topic, key))
                    else:
                        conn.execute("INSERT INTO admin_state (topic, key, body) "
                                     "VALUES (%s, %s, %s) ON CONFLICT (topic, key) "
                                     "DO UPDATE SET body = EXCLUDED.body", (topic, key, body))
                if changed:
                    conn.execute("UPDATE admin_state_meta SET version = version + 1 WHERE id = 1")
                version = self._meta(conn)[1]
        return AdminWrite(version, before)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, autocommit=True,
                                         connect_timeout=self.connect_timeout_s)
        return self._conn

    @staticmethod
    def _meta(conn: psycopg.Connection[Any]) -> tuple[str, int]:
        row = conn.execute("SELECT epoch, version FROM admin_state_meta WHERE id = 1").fetchone()
        return (str(row[0]), int(row[1])) if row is not None else ("", 0)

    def _guard(self) -> _Guard:
        return _PgGuard(self)


class _PgGuard(_Guard):
    """As ``_Guard``, and drop a connection that failed (the next call reconnects)."""

    def __init__(self, store: PostgresAdminState) -> None:
        super().__init__(store._lock, (psycopg.Error, OSError), store.source)
        self.store = store

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None and isinstance(exc, self.errors) and self.store._conn is not None:
            try:
                self.store._conn.close()
            except (psycopg.Error, OSError):
                pass
            self.store._conn = None
        super().__exit__(kind, exc, tb)


__all__ = ["PostgresAdminState"]
