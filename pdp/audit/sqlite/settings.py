"""What the SQLite store reads from ``[audit]``: where the file is and how it syncs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pdp.audit.sqlite.admin_state import SqliteAdminState
from pdp.audit.sqlite.console_sessions import SqliteSessionRows
from pdp.audit.sqlite.log import SqliteDecisionLog


@dataclass(frozen=True, slots=True)
class SqliteSettings:
    """``sqlite_path``, ``synchronous`` and ``busy_timeout_ms`` of ``[audit]``."""

    path: Path
    """The log's file (``<state_dir>/decisions.db`` by default); the admin state shares it."""

    synchronous: str = "FULL"
    """``PRAGMA synchronous``: FULL (survives power loss), NORMAL, EXTRA or OFF."""

    busy_timeout_ms: int = 5000
    """How long to wait for another process's lock on the file."""

    def open_log(self, *, batch_max: int, commit_timeout_s: float | None) -> SqliteDecisionLog:
        return SqliteDecisionLog(self.path, batch_max=batch_max, synchronous=self.synchronous,
                                 busy_timeout_ms=self.busy_timeout_ms,
                                 commit_timeout_s=commit_timeout_s)

    def open_admin_state(self) -> SqliteAdminState:
        return SqliteAdminState(self.path, busy_timeout_ms=self.busy_timeout_ms,
                                synchronous=self.synchronous)

    def open_console_sessions(self) -> SqliteSessionRows:
        return SqliteSessionRows(self.path, busy_timeout_ms=self.busy_timeout_ms,
                                 synchronous=self.synchronous)


__all__ = ["SqliteSettings"]
