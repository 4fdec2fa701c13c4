"""The SQLite decision log (the default): one file in WAL mode."""

from pdp.audit.sqlite.log import SqliteDecisionLog

__all__ = ["SqliteDecisionLog"]
