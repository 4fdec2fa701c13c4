"""The durable copy of what administrators set: revocations, incidents, risk levels, grants.

Live context is read from memory (or Redis) on the hot path, but none of it may
be lost to a restart: a revocation forgotten by a restarted PDP is an allow
that should have been a deny. So every administrative change is first
committed here, in the decision log's own store (the same SQLite file or
PostgreSQL schema, which is already durable and shared by every replica),
and only then acknowledged. Replicas load it at start, poll its ``version``
and reload when it moves; Redis, when configured, is only fan-out and cache
(see ``context.durable``).

Rows are ``(topic, key) -> body`` (JSON text, as the context layer encodes it)::

    revocations   rev-<16 hex>          context.revocations.RevocationEntry
    context       incident:<id>         context.state.Incident
    context       risk:global           context.state.RiskEntry
    context       risk:principal:<id>   context.state.RiskEntry (set by an administrator)
    grants        <grant id>            pdp.engine.grants.Grant

One counter, ``version``, grows with every committed change, and ``epoch`` names
the store (created with the tables): ``(epoch, version)`` identifies a state
exactly, which is what a Redis cache records to know whether it is current.
The tables come with the log's schema migrations (SQLite version 5,
PostgreSQL version 3). This module holds the model; the stores are
``pdp.audit.memory.admin_state``, ``pdp.audit.sqlite.admin_state`` and
``pdp.audit.postgres.admin_state`` (their shared SQL in
``pdp.audit.sql.admin_state``), and :func:`pdp.audit.factory.open_admin_state`
opens the one beside the configured log.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

TOPICS = ("revocations", "context", "grants")


@dataclass(frozen=True, slots=True)
class AdminSnapshot:
    """Every row at one ``version`` of the store named ``epoch``."""

    epoch: str
    version: int
    topics: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def rows(self, topic: str) -> Mapping[str, str]:
        """``key -> body`` of one topic (empty if it has none)."""
        return self.topics.get(topic, {})


@dataclass(frozen=True, slots=True)
class AdminWrite:
    """What a committed write did: the new ``version`` and each key's body before it."""

    version: int
    before: Mapping[str, str | None]


class AdminStateStore(Protocol):
    """Where administrative live state is kept durably. Every method may raise
    ``AuditUnavailable`` (the store cannot be reached or could not commit)."""

    source: str                  # "sqlite:/var/lib/pdp/decisions.db", "postgres", "memory"
    durable: bool                # False only for the in-memory store (tests, ``pdp check``)

    def load(self) -> AdminSnapshot:
        """Every row and the version they were read at, in one transaction."""
        ...

    def version(self) -> tuple[str, int]:
        """``(epoch, version)``: one cheap read, for polling."""
        ...

    def write(self, topic: str, puts: Mapping[str, str] = {}, deletes: Collection[str] = (),
              *, only_new: bool = False) -> AdminWrite:
        """Put and delete rows of ``topic`` in one committed transaction.

        ``only_new``: keys that exist keep their body (an idempotent add). The
        version grows only when a row actually changed.
        """
        ...

    def close(self) -> None:
        ...


def changes(before: Mapping[str, str | None], puts: Mapping[str, str],
            deletes: Collection[str], *, only_new: bool) -> dict[str, str | None]:
    """``key -> new body`` (None: delete) for the rows that actually change."""
    out: dict[str, str | None] = {}
    for key, body in puts.items():
        if before[key] == body or (only_new and before[key] is not None):
            continue
        out[key] = body
    for key in deletes:
        if before[key] is not None and key not in puts:
            out[key] = None
    return out


__all__ = ["TOPICS", "AdminSnapshot", "AdminStateStore", "AdminWrite", "changes"]
