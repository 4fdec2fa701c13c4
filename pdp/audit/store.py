"""The decision log's two faces: appending (the hot path) and querying (auditors).

They are separate protocols, as in Cerbos (``Log`` and ``QueryableLog``): the
decision path needs only :class:`DecisionLog`, so a write-only backend (a
forwarder to a SIEM, say) can serve it. Both stores here implement both; the
combined :class:`DecisionStore` is what :func:`pdp.audit.open_decision_log`
returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from pdp.audit.chain.hashchain import ChainReport
from pdp.audit.query import DecisionFilter, Page
from pdp.audit.records import StoredRow


@runtime_checkable
class DecisionLog(Protocol):
    """Where ``decide()`` writes every record."""

    async def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Store ``record``; return it with ``seq``, ``prev_hash`` and ``hash`` added.

        Returns only once the record is durably committed. Raises
        ``AuditUnavailable`` when it could not be, ``DuplicateDecision`` for a
        different record under a known ``decision_id``, and ``ValueError`` for a
        record that is not JSON-able or lacks ``decision_id``/``timestamp``.
        """
        ...

    def append_sync(self, record: dict[str, Any]) -> dict[str, Any]:
        """:meth:`append` for code without an event loop (CLI, tests); blocks until committed."""
        ...

    def close(self) -> None:
        """Commit what is queued, then release the store.

        Later appends raise ``AuditUnavailable``; reads keep working.
        """
        ...


@runtime_checkable
class QueryableLog(Protocol):
    """What auditors ask of the log. Records come back exactly as stored (with chain keys)."""

    def get(self, decision_id: str) -> dict[str, Any] | None:
        """The record with this ``decision_id``, or None."""
        ...

    def tail(self, n: int) -> list[dict[str, Any]]:
        """The last ``n`` records appended, oldest first (newest last), like ``tail -n``."""
        ...

    def query(self, filters: DecisionFilter, limit: int = 100,
              cursor: str | None = None) -> Page:
        """Records passing ``filters``, newest first, at most ``limit`` (1..1000) per page."""
        ...

    def iter_all(self) -> Iterator[dict[str, Any]]:
        """Every record in ``seq`` order (for replay and the identity inventory)."""
        ...

    def iter_stored(self) -> Iterator[StoredRow]:
        """Every row in ``seq`` order as stored: the hashed text and its chain columns
        (for export, byte for byte)."""
        ...

    def verify(self) -> ChainReport:
        """Check the whole hash chain; see :mod:`pdp.audit.chain.hashchain`."""
        ...


@runtime_checkable
class DecisionStore(DecisionLog, QueryableLog, Protocol):
    """A log that can be both written and queried."""


__all__ = ["DecisionLog", "DecisionStore", "QueryableLog"]
