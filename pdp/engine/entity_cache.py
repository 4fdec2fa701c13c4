"""Per-bundle memo of entity handles with one principal added.

The same workload asks again and again; building its entity handle
(``base.with_added_json_str``) costs more than Cedar's evaluation on a small
bundle, so the handle is kept, keyed by the principal entity's exact JSON.
Each handle is a clone of the bundle's base entities, so capacity shrinks as
the base grows (the memory budget is about 200,000 entity copies).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import cedarpy

from pdp.engine.memo import Memo

ENTITY_COPY_BUDGET = 200_000


class PrincipalEntityCache:
    def __init__(self, base: cedarpy.Entities) -> None:
        self.base = base
        self._handles: Memo[Hashable, cedarpy.Entities] = Memo(
            max(8, min(4096, ENTITY_COPY_BUDGET // (len(base) + 1))))

    @property
    def capacity(self) -> int:
        return self._handles.capacity

    def with_principal(self, key: Hashable, principal_json: Callable[[], str]) -> cedarpy.Entities:
        """The base entities plus the principal; ``key`` must determine ``principal_json()``."""
        # Built by the PDP from a verified identity, so it needs no schema check.
        return self._handles.get(key, lambda: self.base.with_added_json_str(principal_json()))
