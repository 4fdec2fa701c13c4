"""The decision log: every decision and admin event, hash-chained and queryable.

``decide()`` appends through :class:`DecisionLog`; auditors read through
:class:`QueryableLog`; :func:`open_decision_log` picks the store by name
(SQLite by default, in-memory for tests and the CLI). See ``chain.hashchain`` for
how tampering is detected.
"""

from pdp.audit.chain.hashchain import GENESIS, ChainReport, link_hash, verify_chain
from pdp.audit.errors import AuditError, AuditUnavailable, DuplicateDecision
from pdp.audit.factory import open_decision_log
from pdp.audit.memory.log import MemoryDecisionLog
from pdp.audit.query import DecisionFilter, Page
from pdp.audit.sqlite.log import SqliteDecisionLog
from pdp.audit.store import DecisionLog, DecisionStore, QueryableLog

__all__ = [
    "GENESIS",
    "AuditError",
    "AuditUnavailable",
    "ChainReport",
    "DecisionFilter",
    "DecisionLog",
    "DecisionStore",
    "DuplicateDecision",
    "MemoryDecisionLog",
    "Page",
    "QueryableLog",
    "SqliteDecisionLog",
    "link_hash",
    "open_decision_log",
    "verify_chain",
]
