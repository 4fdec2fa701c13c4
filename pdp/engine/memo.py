"""A bounded, thread-safe memo of values that are costly to build (Cedar handles).

The engine keeps several: entity handles per principal, entity slices per request,
linked policy sets per set of grants, why-not probe sets per tuple of policies,
policy slices per request scope. Each value is a pure function of its key, so
building one twice in a race is harmless; the build runs outside the lock. The
least recently used value is dropped first. It is the standard library's
``OrderedDict`` (in C) rather than cachetools' ``LRUCache``, whose hits run
several Python calls: a hit is on every decision's path, twice or three times.

A memo is bounded by the summed *weight* of its values, one each unless a
``weigh`` function says otherwise: the engine weighs a Cedar handle by what it
copies (entities, policies), since that, not the count of handles, is what a
worker's memory grows with (``pdp.engine.cache_budget``). Weighing happens
once per build, never on a hit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    """Values whose weights sum to at most ``capacity``, the least recently used dropped
    first. A value heavier than the whole capacity is returned but not kept."""

    def __init__(self, capacity: int, weigh: Callable[[K, V], int] | None = None) -> None:
        self._capacity = capacity
        self._weigh = weigh
        self._cache: OrderedDict[K, V] = OrderedDict()
        self._weights: dict[K, int] = {}
        self._weight = 0
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def weight(self) -> int:
        """The summed weight of the values kept (never above ``capacity``)."""
        with self._lock:
            return self._weight

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
        weight = 1 if self._weigh is None else max(1, self._weigh(key, built))
        if weight > self._capacity:
            return built
        with self._lock:
            self._weight += weight - self._weights.get(key, 0)  # a race may have built it too
            cache[key] = built
            self._weights[key] = weight
            cache.move_to_end(key)
            while self._weight > self._capacity:
                dropped, _ = cache.popitem(last=False)
                self._weight -= self._weights.pop(dropped)
        return built

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)
