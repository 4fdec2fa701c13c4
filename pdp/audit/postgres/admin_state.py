"""The durable admin state in the log's PostgreSQL schema (see :mod:`pdp.audit.sql.admin_state`).

Every replica reads and writes the same rows, so this is also how they agree:
writers serialize on the ``admin_state_meta`` row (``SELECT ... FOR UPDATE``),
and a replica that sees ``version`` move reloads. One connection per process,
reopened after an error.
"""

from __future__ import annotations

from typing import Any

import psycopg

from pdp.audit.postgres.dialect import POSTGRES
from pdp.audit.postgres.schema import lock_key, migrate
from pdp.audit.sql.admin_state import SqlAdminState


class PostgresAdminState(SqlAdminState):
    """:class:`~pdp.audit.admin_state.AdminStateStore` in PostgreSQL (``dsn`` as for the log)."""

    dialect = POSTGRES
    source = "postgres"

    def __init__(self, dsn: str | None, *, connect_timeout_s: int = 5) -> None:
        if not dsn:
            raise ValueError("the postgres admin state needs postgres_dsn")
        super().__init__()
        self.dsn = dsn
        self.connect_timeout_s = connect_timeout_s
        self._conn: psycopg.Connection[Any] | None = None
        with self._guarded() as conn:
            assert isinstance(conn, psycopg.Connection)
            migrate(conn, lock_key(conn))  # the log's migrations create the tables

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, autocommit=True,
                                         connect_timeout=self.connect_timeout_s)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except (psycopg.Error, OSError):
                pass
            self._conn = None

    def _close(self) -> None:
        self._drop_connection()


__all__ = ["PostgresAdminState"]
