"""One reconnecting PostgreSQL connection per store object (admin state, console sessions)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, ClassVar

import psycopg

from pdp.audit.postgres.dialect import POSTGRES
from pdp.audit.postgres.schema import network_bounds
from pdp.audit.postgres.watchdog import watchdog


class PostgresConnection:
    """Opens ``dsn`` in autocommit mode on first use and again after a failure.

    Mixed in before :class:`~pdp.audit.sql.guarded.GuardedConnection`, whose lock its
    ``__init__`` sets up in turn; a subclass creates its tables in :meth:`_prepare`
    (run once, at construction). ``what`` names the data in its refusal.
    """

    what: ClassVar[str]
    dialect = POSTGRES
    source = "postgres"
    call_timeout_s: float = 10.0  # one call's bound (they are small: a row or a version)

    def __init__(self, dsn: str | None, *, connect_timeout_s: int = 5) -> None:
        if not dsn:
            raise ValueError(f"{self.what} in PostgreSQL needs postgres_dsn")
        super().__init__()
        self.dsn = dsn
        self.connect_timeout_s = connect_timeout_s
        self._conn: psycopg.Connection[Any] | None = None
        with self._guarded() as conn:  # type: ignore[attr-defined]  # GuardedConnection's
            assert isinstance(conn, psycopg.Connection)
            self._prepare(conn)

    def _prepare(self, conn: psycopg.Connection[Any]) -> None:
        """Create what this store needs in the schema (idempotent, once per process)."""
        raise NotImplementedError

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, autocommit=True,
                                         **network_bounds(self.dsn, self.connect_timeout_s))
        return self._conn

    def _bounded(self, conn: Any) -> AbstractContextManager[object]:
        return watchdog(conn, self.call_timeout_s)

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except (psycopg.Error, OSError):
                pass
            self._conn = None

    def _close(self) -> None:
        self._drop_connection()


__all__ = ["PostgresConnection"]
