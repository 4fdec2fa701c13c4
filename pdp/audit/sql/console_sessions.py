"""Console sessions (:mod:`pdp.audit.console_sessions`) in either SQL store, written once.

The ``console_sessions`` table lives beside the decision log (the same SQLite file
or PostgreSQL schema) and is created if missing (``CREATE TABLE IF NOT EXISTS``), not
by the log's migrations: it holds no part of the chain and can be dropped at any time
(everyone signs in again). Each call is one statement or one short transaction on a
connection of its own, under a lock; a driver failure becomes ``AuditUnavailable``
and the connection is reopened on the next call.
"""

from __future__ import annotations

import json

from pdp.audit.console_sessions import SessionRow
from pdp.audit.sql.guarded import GuardedConnection

CREATE = """CREATE TABLE IF NOT EXISTS console_sessions (
    id_hash       text PRIMARY KEY,
    principal     text NOT NULL,
    groups_json   text NOT NULL,
    created       text NOT NULL,
    expires       text NOT NULL,
    last_seen     text NOT NULL,
    dev_principal text,
    sealed        text
)"""
_COLUMNS = "id_hash, principal, groups_json, created, expires, last_seen, dev_principal, sealed"
_INSERT = f"INSERT INTO console_sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_SELECT = f"SELECT {_COLUMNS} FROM console_sessions WHERE id_hash = ?"
_TOUCH = "UPDATE console_sessions SET last_seen = ? WHERE id_hash = ? AND last_seen < ?"
_DELETE = "DELETE FROM console_sessions WHERE id_hash = ?"
_PURGE = "DELETE FROM console_sessions WHERE expires <= ? OR last_seen <= ?"
_COUNT = "SELECT count(*) FROM console_sessions"
_EVICT = ("DELETE FROM console_sessions WHERE id_hash IN "
          "(SELECT id_hash FROM console_sessions ORDER BY last_seen LIMIT ?)")


class SqlSessionRows(GuardedConnection):
    """:class:`~pdp.audit.console_sessions.SessionRows` in a SQL store; a subclass says
    how it connects and how it creates the table (once, however many processes start)."""

    what = "the console sessions"
    durable = True

    def put(self, row: SessionRow, *, max_rows: int) -> None:
        d = self.dialect
        with self._guarded() as conn, d.write_transaction(conn):
            n = int(conn.execute(_COUNT).fetchone()[0])
            if n >= max_rows:
                conn.execute(d.sql(_EVICT), (n - max_rows + 1,))
            conn.execute(d.sql(_INSERT), (
                row.id_hash, row.principal, json.dumps(list(row.groups)), row.created,
                row.expires, row.last_seen, row.dev_principal, row.sealed))

    def get(self, id_hash: str) -> SessionRow | None:
        with self._guarded() as conn:
            found = conn.execute(self.dialect.sql(_SELECT), (id_hash,)).fetchone()
        if found is None:
            return None
        groups = json.loads(found[2])
        return SessionRow(id_hash=str(found[0]), principal=str(found[1]),
                          groups=tuple(str(g) for g in groups), created=str(found[3]),
                          expires=str(found[4]), last_seen=str(found[5]),
                          dev_principal=found[6], sealed=found[7])

    def touch(self, id_hash: str, last_seen: str) -> None:
        with self._guarded() as conn:  # never moves last_seen back (workers race)
            conn.execute(self.dialect.sql(_TOUCH), (last_seen, id_hash, last_seen))

    def delete(self, id_hash: str) -> None:
        with self._guarded() as conn:
            conn.execute(self.dialect.sql(_DELETE), (id_hash,))

    def purge(self, now: str, idle_since: str) -> int:
        with self._guarded() as conn:
            return int(conn.execute(self.dialect.sql(_PURGE), (now, idle_since)).rowcount)

    def count(self) -> int:
        with self._guarded() as conn:
            return int(conn.execute(_COUNT).fetchone()[0])


__all__ = ["CREATE", "SqlSessionRows"]
