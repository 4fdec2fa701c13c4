"""A bounded, thread-safe memo of values that are costly to build (Cedar handles).

The engine keeps several: entity handles per principal, entity slices per request,
linked policy sets per set of grants, why-not probe sets per tuple of policies. Each
value is a pure function of its key, so building one twice in a race is harmless;
the build runs outside the lock, and the cache is cachetools' least-recently-used one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from cachetools import LRUCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    """At most ``capacity`` values, the least recently used dropped first."""

    def __init__(self, capacity: int) -> None:
        self._cache: LRUCache[K, V] = LRUCache(maxsize=capacity)
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return int(self._cache.maxsize)

    def get(self, key: K, build: Callable[[], V]) -> V:
        """The value for ``key``; ``build()`` makes it (outside the lock) when absent.
        ``key`` must determine what ``build`` returns."""
        with self._lock:
            found = self._cache.get(key)
        if found is not None:
            return found
        built = build()
        with self._lock:
            self._cache[key] = built
        return built

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)
