"""What the PostgreSQL store reads from ``[audit]``: the connection string."""

from __future__ import annotations

from dataclasses import dataclass

from pdp.audit.postgres.admin_state import PostgresAdminState
from pdp.audit.postgres.console_sessions import PostgresSessionRows
from pdp.audit.postgres.log import PostgresDecisionLog


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """``postgres_dsn`` of ``[audit]``."""

    dsn: str
    """A libpq connection string or URI; name the schema in it
    (``options=-csearch_path%3Dpdp``). The admin state shares the schema."""

    def open_log(self, *, batch_max: int, commit_timeout_s: float | None) -> PostgresDecisionLog:
        return PostgresDecisionLog(self.dsn, batch_max=batch_max,
                                   commit_timeout_s=commit_timeout_s)

    def open_admin_state(self) -> PostgresAdminState:
        return PostgresAdminState(self.dsn)

    def open_console_sessions(self) -> PostgresSessionRows:
        return PostgresSessionRows(self.dsn)


__all__ = ["PostgresSettings"]
