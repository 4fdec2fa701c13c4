"""Console sessions as the shared store keeps them: one row per signed-in person.

The console (``pdp.console.session``) decides what a session is and when it
ends; this module is only the row it is kept in and the contract of the stores
that keep it, so that every ``--workers`` process and every replica behind a
load balancer finds the same sessions, and a restart forgets none of them.

A row never holds what would let a reader of the database act as the person:

- ``id_hash`` is a SHA-256 of the session id (the cookie's value), never the id;
- ``sealed`` is the session's credential (an OIDC ID token) encrypted under a key
  derived from the session id, so only a request bearing the cookie can open it.

Times are normalized RFC 3339 text (``pdp.audit.records.normalize_ts``), so the
stores compare them as text. The stores: ``pdp.audit.sql.console_sessions`` (SQLite
and PostgreSQL, a ``console_sessions`` table beside the decision log, created if
missing) and ``pdp.audit.memory.console_sessions``; ``pdp.audit.factory`` opens the
one beside the configured log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One stored session (see the module's doc for what each field may hold)."""

    id_hash: str
    principal: str
    groups: tuple[str, ...]
    created: str
    expires: str
    last_seen: str
    dev_principal: str | None = None
    sealed: str | None = None


class SessionRows(Protocol):
    """Where console sessions are kept. Every method may raise
    ``pdp.audit.errors.AuditUnavailable`` (the store cannot be reached or did not commit)."""

    source: str
    durable: bool

    def put(self, row: SessionRow, *, max_rows: int) -> None:
        """Store a new session; first drop the least recently seen ones beyond ``max_rows``."""
        ...

    def get(self, id_hash: str) -> SessionRow | None:
        ...

    def touch(self, id_hash: str, last_seen: str) -> None:
        """Record a use of the session (its idle timer restarts)."""
        ...

    def delete(self, id_hash: str) -> None:
        ...

    def purge(self, now: str, idle_since: str) -> int:
        """Delete the sessions expired at ``now`` or unused since ``idle_since``; how many."""
        ...

    def count(self) -> int:
        ...

    def close(self) -> None:
        ...


__all__ = ["SessionRow", "SessionRows"]
