"""Console sessions in the SQLite log's file (see :mod:`pdp.audit.sql.console_sessions`)."""

from __future__ import annotations

import sqlite3

from pdp.audit.sql.console_sessions import CREATE, SqlSessionRows
from pdp.audit.sqlite.connection import SqliteConnection
from pdp.audit.sqlite.dialect import SQLITE


class SqliteSessionRows(SqliteConnection, SqlSessionRows):
    """The ``console_sessions`` table in the log's file, on a connection of its own (WAL:
    it and the log's writer work side by side; every ``--workers`` process opens one)."""

    dialect = SQLITE

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute(CREATE)  # idempotent; the file lock serializes processes


__all__ = ["SqliteSessionRows"]
