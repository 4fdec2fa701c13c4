"""The durable admin state in the SQLite log's file (see :mod:`pdp.audit.sql.admin_state`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pdp.audit.errors import AuditUnavailable
from pdp.audit.sql.admin_state import SqlAdminState
from pdp.audit.sqlite.dialect import SQLITE
from pdp.audit.sqlite.schema import connect, migrate


class SqliteAdminState(SqlAdminState):
    """The rows in the log's file, on a connection of their own.

    WAL lets this connection and the log's writer work side by side; each
    write is one ``BEGIN IMMEDIATE ... COMMIT`` at the log's ``synchronous``
    level, so an acknowledged change survives ``kill -9`` (and, with FULL,
    power loss).
    """

    dialect = SQLITE

    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000,
                 synchronous: str = "FULL") -> None:
        super().__init__()
        self.source = f"sqlite:{path}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = connect(path, busy_timeout_ms=busy_timeout_ms,
                                 synchronous=synchronous, writer=True)
            migrate(self._conn)  # the log's migrations create the tables
        except sqlite3.Error as e:
            raise AuditUnavailable(f"cannot open the admin state in {path}: {e}") from e

    def _connection(self) -> sqlite3.Connection:
        return self._conn

    def _close(self) -> None:
        self._conn.close()


__all__ = ["SqliteAdminState"]
