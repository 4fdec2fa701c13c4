"""Console sessions in the SQLite log's file (see :mod:`pdp.audit.sql.console_sessions`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pdp.audit.errors import AuditUnavailable
from pdp.audit.sql.console_sessions import CREATE, SqlSessionRows
from pdp.audit.sqlite.dialect import SQLITE
from pdp.audit.sqlite.schema import connect


class SqliteSessionRows(SqlSessionRows):
    """The ``console_sessions`` table in the log's file, on a connection of its own (WAL:
    it and the log's writer work side by side; every ``--workers`` process opens one)."""

    dialect = SQLITE

    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000,
                 synchronous: str = "FULL") -> None:
        super().__init__()
        self.source = f"sqlite:{path}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = connect(path, busy_timeout_ms=busy_timeout_ms,
                                 synchronous=synchronous, writer=True)
            self._conn.execute(CREATE)  # idempotent; the file lock serializes processes
        except sqlite3.Error as e:
            raise AuditUnavailable(f"cannot open the console sessions in {path}: {e}") from e

    def _connection(self) -> sqlite3.Connection:
        return self._conn

    def _close(self) -> None:
        self._conn.close()


__all__ = ["SqliteSessionRows"]
