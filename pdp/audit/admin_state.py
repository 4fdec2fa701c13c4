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

# The data and the contract are the live context's (context.admin_store); the stores are
# in the backend folders.
from context.admin_store import AdminSnapshot, AdminStateStore, AdminWrite

TOPICS = ("revocations", "context", "grants")


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
