"""What the decision service needs of a decision log, defined here beside it.

The service appends every record and answers only once it is committed
("acknowledged means recorded"). It needs nothing else of the log, so this is
the whole contract; the stores in :mod:`pdp.audit` (SQLite, PostgreSQL,
in-memory, the spool) satisfy it structurally, and the composition root
(``pdp.components``) hands one in. The dependency points from ``audit`` to
``decision``, never back: ``tests/test_layering.py`` checks it.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


class LogUnavailable(Exception):
    """The log could not durably commit a record (I/O error, lock timeout, closed).

    The service turns it into a deny with reason code ``audit.unavailable``
    (fail closed): a decision that left no trace is not given. The audit
    stores raise ``pdp.audit.errors.AuditUnavailable``, a subclass.
    """


@runtime_checkable
class DecisionLog(Protocol):
    """Where the decision service writes every decision record and admin event."""

    async def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Store ``record`` and return it as stored (with its chain keys), once it is
        durably committed; raise :class:`LogUnavailable` when it could not be."""
        ...

    def append_sync(self, record: dict[str, Any]) -> dict[str, Any]:
        """:meth:`append` for callers without an event loop (the CLI); blocks until
        committed."""
        ...


__all__ = ["DecisionLog", "LogUnavailable"]
