"""One writing connection to the log's SQLite file per store object (admin state, console
sessions): opened at construction, with WAL and the log's ``synchronous`` level, so that an
acknowledged write survives ``kill -9`` (and, with FULL, power loss)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import ClassVar

from pdp.audit.errors import AuditUnavailable
from pdp.audit.sqlite.schema import connect


class SqliteConnection:
    """Mixed in before :class:`~pdp.audit.sql.guarded.GuardedConnection`; a subclass
    creates its tables in :meth:`_prepare`. ``what`` names the data in its refusal."""

    what: ClassVar[str]

    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000,
                 synchronous: str = "FULL") -> None:
        super().__init__()
        self.source = f"sqlite:{path}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = connect(path, busy_timeout_ms=busy_timeout_ms,
                                 synchronous=synchronous, writer=True)
            self._prepare(self._conn)
        except sqlite3.Error as e:
            raise AuditUnavailable(f"cannot open {self.what} in {path}: {e}") from e

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Create what this store needs in the file (idempotent)."""
        raise NotImplementedError

    def _connection(self) -> sqlite3.Connection:
        return self._conn

    def _close(self) -> None:
        self._conn.close()


__all__ = ["SqliteConnection"]
