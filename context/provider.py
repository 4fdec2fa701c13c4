"""The one interface every live-context provider implements."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from context.model import LiveSnapshot


class LiveContextProvider(Protocol):
    def snapshot(self, principal_id: str | None, now: datetime) -> LiveSnapshot:
        """The live context for ``principal_id`` at ``now``; never raises, never blocks on I/O."""
        ...
