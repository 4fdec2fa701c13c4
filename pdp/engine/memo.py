"""A bounded, thread-safe memo of values that are costly to build (Cedar handles).

The engine keeps several: entity handles per principal, entity slices per request,
linked policy sets per set of grants, why-not probe sets per tuple of policies,
policy slices per request scope. Each value is a pure function of its key, so
building one twice in a race is harmless; the build runs outside the lock. The
least recently used value is dropped first. It is the standard library's
``OrderedDict`` (in C) rather than cachetools' ``LRUCache``, whose hits run
several Python calls: a hit is on every decision's path, twice or three times.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    """At most ``capacity`` values, the least recently used dropped first."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._cache: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return self._capacity

    def get(self, key: K, build: Callable[[], V]) -> V:
        """The value for ``key``; ``build()`` makes it (outside the lock) when absent.
        ``key`` must determine what ``build`` returns."""
        cache = self._cache
        with self._lock:
            found = cache.get(key)
            if found is not None:
                cache.move_to_end(key)
                return found
        built = build()
        with self._lock:
            cache[key] = built
            cache.move_to_end(key)
            while len(cache) > self._capacity:
                cache.popitem(last=False)
        return built

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)
