"""Per-bundle memo of entity handles with one principal added.

The same workload asks again and again; building its entity handle
(``base.with_added_json_str``) costs more than Cedar's evaluation on a small
bundle, so the handle is kept, keyed by the principal entity's exact JSON.
Each handle is a clone of the bundle's base entities, so capacity shrinks as
the base grows (the memory budget is about 200,000 entity copies).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import cedarpy

ENTITY_COPY_BUDGET = 200_000


class PrincipalEntityCache:
    def __init__(self, base: cedarpy.Entities) -> None:
        self.base = base
        self.capacity = max(8, min(4096, ENTITY_COPY_BUDGET // (len(base) + 1)))
        self._handles: OrderedDict[Hashable, cedarpy.Entities] = OrderedDict()
        self._lock = threading.Lock()

    def with_principal(self, key: Hashable, principal_json: Callable[[], str]) -> cedarpy.Entities:
        """The base entities plus the principal; ``key`` must determine ``principal_json()``."""
        with self._lock:
            handle = self._handles.get(key)
            if handle is not None:
                self._handles.move_to_end(key)
                return handle
        # Built by the PDP from a verified identity, so it needs no schema check.
        handle = self.base.with_added_json_str(principal_json())
        with self._lock:
            self._handles[key] = handle
            while len(self._handles) > self.capacity:
                self._handles.popitem(last=False)
        return handle
