"""The one interface every live-context provider implements."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from context.model import LiveSnapshot


class LiveContextProvider(Protocol):
    def snapshot(self, principal_id: str | None, now: datetime, *,
                 resource_type: str | None = None,
                 resource_tags: Collection[str] = ()) -> LiveSnapshot:
        """The live context for ``principal_id`` asking about a resource of ``resource_type``
        tagged ``resource_tags`` (incidents can be scoped to either), at ``now``.

        Never raises, never blocks on I/O: providers read a local copy.
        """
        ...
