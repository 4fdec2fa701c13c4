"""Where incidents and risk levels are kept: one small protocol, two backends.

``InMemoryStore`` (here) keeps them in this process: the default, nothing to
install. ``RedisContextStore`` (``context.redis_backend``) keeps them in Redis
for several replicas and holds a local copy that pub/sub keeps current.

Either way ``view()`` never does I/O: the hot path reads the local copy. Only
``apply()`` (an administrator's change) talks to the backend, and may raise
``ContextUnavailable``; ``apply_soon()`` (an automatic change) takes effect
locally at once and reaches the backend when it can.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from context.state import ContextChange, ContextState


class ContextUnavailable(Exception):
    """The shared store could not take a change (it is unreachable); nothing was changed."""


@dataclass(frozen=True, slots=True)
class StoreView:
    """The local copy and how fresh it is, read together."""

    state: ContextState
    source: str                  # "memory", "redis://127.0.0.1:6379/0"
    age_s: float | None          # since last confirmed with the source; None: never loaded
    reachable: bool
    error: str | None = None
    shared: bool = False         # other replicas write it (values can change under us)


class ContextStore(Protocol):
    backend: str                 # "memory" | "redis"

    def view(self) -> StoreView:
        """The local copy; never blocks on I/O."""
        ...

    def apply(self, change: ContextChange) -> ContextState:
        """Write ``change`` durably and return the new state (raises ``ContextUnavailable``)."""
        ...

    def apply_soon(self, change: ContextChange) -> None:
        """Apply ``change`` locally now and write it to the backend when it can; never blocks."""
        ...

    def close(self) -> None:
        ...


class InMemoryStore:
    """Context held in this process. Each change gets a new version ``<epoch>.<n>``."""

    backend = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._epoch = secrets.token_hex(4)
        self._counter = 0
        self._state = ContextState.empty(f"{self._epoch}.0")

    def view(self) -> StoreView:
        return StoreView(state=self._state, source="memory", age_s=0.0, reachable=True)

    def apply(self, change: ContextChange) -> ContextState:
        with self._lock:
            self._counter += 1
            self._state = self._state.applied(change, f"{self._epoch}.{self._counter}")
            return self._state

    def apply_soon(self, change: ContextChange) -> None:
        self.apply(change)

    def close(self) -> None:
        pass


def monotonic() -> float:
    return time.monotonic()


__all__ = ["ContextStore", "ContextUnavailable", "InMemoryStore", "StoreView"]
