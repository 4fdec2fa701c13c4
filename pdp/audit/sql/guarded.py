"""One connection to a SQL store, used one call at a time, its failures made ``AuditUnavailable``.

What the durable admin state (:mod:`pdp.audit.sql.admin_state`) and the console's
sessions (:mod:`pdp.audit.sql.console_sessions`) share: each holds a connection of its
own beside the decision log's, under a lock, and turns the driver's errors into
``AuditUnavailable`` — dropping a connection that failed, so the next call opens a
new one. A subclass says how it connects (:meth:`GuardedConnection._connection`), and,
if it reconnects, how it lets go (:meth:`GuardedConnection._drop_connection`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import ClassVar

from pdp.audit.errors import AuditUnavailable
from pdp.audit.sql.dialect import Connection, Dialect


class GuardedConnection:
    """A connection under a lock; ``what`` names the data in error messages."""

    dialect: ClassVar[Dialect]
    what: ClassVar[str]
    source: str

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def _connection(self) -> Connection:
        """The connection to use now (opened if there is none)."""
        raise NotImplementedError

    def _bounded(self, conn: Connection) -> AbstractContextManager[object]:
        """How long one call may hold ``conn`` (default: unbounded; a networked store
        bounds it, so a peer that never answers cannot hold the lock for good)."""
        return nullcontext()

    def _drop_connection(self) -> None:
        """Forget a connection that failed, so the next call opens a new one (default: keep it)."""

    def _close(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        with self._lock:
            self._close()

    @contextmanager
    def _guarded(self) -> Iterator[Connection]:
        """Hold the lock; the driver's errors become ``AuditUnavailable``."""
        with self._lock:
            try:
                conn = self._connection()
                with self._bounded(conn):
                    yield conn
            except self.dialect.errors as exc:
                self._drop_connection()
                raise AuditUnavailable(f"{self.what} in {self.source} is unavailable: "
                                       f"{exc}") from exc


__all__ = ["GuardedConnection"]
