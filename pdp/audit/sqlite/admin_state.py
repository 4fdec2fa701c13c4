"""The durable admin state in the SQLite log's file (see :mod:`pdp.audit.sql.admin_state`)."""

from __future__ import annotations

import sqlite3

from pdp.audit.sql.admin_state import SqlAdminState
from pdp.audit.sqlite.connection import SqliteConnection
from pdp.audit.sqlite.dialect import SQLITE
from pdp.audit.sqlite.schema import migrate


class SqliteAdminState(SqliteConnection, SqlAdminState):
    """The rows in the log's file, on a connection of their own.

    WAL lets this connection and the log's writer work side by side; each
    write is one ``BEGIN IMMEDIATE ... COMMIT`` at the log's ``synchronous``
    level, so an acknowledged change survives ``kill -9`` (and, with FULL,
    power loss).
    """

    dialect = SQLITE

    def _prepare(self, conn: sqlite3.Connection) -> None:
        migrate(conn)  # the log's migrations create the tables


__all__ = ["SqliteAdminState"]
