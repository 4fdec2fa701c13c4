"""One reconnecting PostgreSQL connection per store object (admin state, console sessions)."""

from __future__ import annotations

from typing import Any

import psycopg


class PostgresConnection:
    """Opens ``self.dsn`` in autocommit mode on first use and again after a failure."""

    dsn: str
    connect_timeout_s: int
    _conn: psycopg.Connection[Any] | None = None

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


__all__ = ["PostgresConnection"]
