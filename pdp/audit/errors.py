"""Why the decision log refused a record::

    AuditError
     ├── AuditUnavailable     audit.unavailable — the store could not commit
     └── DuplicateDecision    another record already holds this decision_id

``AuditUnavailable`` is the one the decision path cares about: when durability
is required, ``decide()`` turns it into a deny with reason code
``audit.unavailable`` (fail closed), never an allow that left no trace.
"""

from __future__ import annotations

from context.admin_store import AdminStateUnavailable
from pdp.decision.log import LogUnavailable
from pdp.reasons import ReasonCode


class AuditError(Exception):
    """The decision log refused a record. ``code`` is the decision's reason code."""

    code: ReasonCode = ReasonCode.AUDIT_UNAVAILABLE


class AuditUnavailable(AuditError, LogUnavailable, AdminStateUnavailable):
    """The store could not durably commit the record (I/O error, lock timeout, closed).

    It is what the decision service catches as ``pdp.decision.log.LogUnavailable`` and
    the live context's durable copy as ``context.admin_store.AdminStateUnavailable``:
    each defines the failure it expects of its store, and the stores here raise this.

    Nothing of the failed write is visible afterwards: a batch either commits
    whole or not at all, and the chain continues from the last committed record.
    """


class DuplicateDecision(AuditError):
    """A *different* record with the same ``decision_id`` is already stored.

    Appending the very same record again is not an error (appends are
    idempotent, so a caller may retry after a timeout); the stored copy is
    returned instead.
    """


__all__ = ["AuditError", "AuditUnavailable", "DuplicateDecision"]
