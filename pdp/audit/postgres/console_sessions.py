"""Console sessions in the log's PostgreSQL schema (see :mod:`pdp.audit.sql.console_sessions`).

Every replica and worker reads the same rows, so a session made on one is known
to all, and a sign-out on one ends it everywhere. One connection per process,
reopened after an error.
"""

from __future__ import annotations

from typing import Any

import psycopg

from pdp.audit.postgres.connection import PostgresConnection
from pdp.audit.postgres.schema import lock_key
from pdp.audit.sql.console_sessions import CREATE, SqlSessionRows


class PostgresSessionRows(PostgresConnection, SqlSessionRows):
    """The ``console_sessions`` table in the schema the ``dsn`` names."""

    def _prepare(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():  # under the log's lock: workers starting together
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(conn),))
            conn.execute(CREATE)


__all__ = ["PostgresSessionRows"]
