"""The durable admin state in the log's PostgreSQL schema (see :mod:`pdp.audit.sql.admin_state`).

Every replica reads and writes the same rows, so this is also how they agree:
writers serialize on the ``admin_state_meta`` row (``SELECT ... FOR UPDATE``),
and a replica that sees ``version`` move reloads. One connection per process,
reopened after an error.
"""

from __future__ import annotations

import psycopg

from pdp.audit.postgres.connection import PostgresConnection
from pdp.audit.postgres.dialect import POSTGRES
from pdp.audit.postgres.schema import lock_key, migrate
from pdp.audit.sql.admin_state import SqlAdminState


class PostgresAdminState(PostgresConnection, SqlAdminState):
    """:class:`~pdp.audit.admin_state.AdminStateStore` in PostgreSQL (``dsn`` as for the log)."""

    dialect = POSTGRES
    source = "postgres"

    def __init__(self, dsn: str | None, *, connect_timeout_s: int = 5) -> None:
        super().__init__(dsn, connect_timeout_s=connect_timeout_s)
        with self._guarded() as conn:
            assert isinstance(conn, psycopg.Connection)
            migrate(conn, lock_key(conn))  # the log's migrations create the tables


__all__ = ["PostgresAdminState"]
