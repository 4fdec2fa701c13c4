"""The durable admin state in the log's PostgreSQL schema (see :mod:`pdp.audit.sql.admin_state`).

Every replica reads and writes the same rows, so this is also how they agree:
writers serialize on the ``admin_state_meta`` row (``SELECT ... FOR UPDATE``),
and a replica that sees ``version`` move reloads. One connection per process,
reopened after an error.
"""

from __future__ import annotations

from typing import Any

import psycopg

from pdp.audit.postgres.connection import PostgresConnection
from pdp.audit.postgres.schema import lock_key, migrate
from pdp.audit.sql.admin_state import SqlAdminState


class PostgresAdminState(PostgresConnection, SqlAdminState):
    """:class:`~pdp.audit.admin_state.AdminStateStore` in PostgreSQL (``dsn`` as for the log)."""

    def _prepare(self, conn: psycopg.Connection[Any]) -> None:
        migrate(conn, lock_key(conn))  # the log's migrations create the tables


__all__ = ["PostgresAdminState"]
