"""What the live context needs of the durable store of administrative state.

``context.durable`` keeps each replica's copy of what administrators set
(revocations, incidents, risk levels, grants) current with a durable store.
The contract is defined here, beside its user: the stores themselves live in
``pdp.audit.admin_state`` (in the decision log's SQLite file or PostgreSQL
schema, or in memory) and satisfy it structurally. The dependency points from
``pdp.audit`` to ``context``, never back: ``tests/test_layering.py`` checks it.

Rows are ``(topic, key) -> body`` (JSON text, as the context layer encodes it).
``(epoch, version)`` identifies a state exactly: ``epoch`` names the store,
``version`` grows with every committed change.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol


class AdminStateUnavailable(Exception):
    """The durable store could not be read or could not commit a change.

    The stores raise ``pdp.audit.errors.AuditUnavailable``, a subclass.
    """


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
    :class:`AdminStateUnavailable` (the store cannot be reached or could not commit)."""

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


__all__ = ["AdminSnapshot", "AdminStateStore", "AdminStateUnavailable", "AdminWrite"]
