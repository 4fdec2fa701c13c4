"""Per-bundle memos of entity handles: the bundle's entities plus one principal, and
those plus the entities a PEP describes in its request.

The same workload asks again and again, often about the same resource; building
its entity handle (``base.with_added_json_str``: a clone of the base, a parse
and, for what a PEP describes, a check against the schema) costs more than
Cedar's evaluation on a small bundle. So each handle is built once and kept,
keyed by what determines it exactly: the principal's cache key (its verified
identity) or JSON, and the described entities' JSON. Each handle is a clone of
the bundle's base entities, so capacity shrinks as the base grows (the memory
budget is about 200,000 entity copies, half for each memo). A described entity
that does not match the schema raises ``ValueError`` and is not kept.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import cedarpy

from pdp.engine.memo import Memo

ENTITY_COPY_BUDGET = 200_000


class PrincipalEntityCache:
    def __init__(self, base: cedarpy.Entities) -> None:
        self.base = base
        capacity = max(8, min(4096, ENTITY_COPY_BUDGET // 2 // (len(base) + 1)))
        self._handles: Memo[Hashable, cedarpy.Entities] = Memo(capacity)
        self._described: Memo[tuple[Hashable, bytes], cedarpy.Entities] = Memo(capacity)

    @property
    def capacity(self) -> int:
        return self._handles.capacity

    def with_principal(self, key: Hashable, principal_json: Callable[[], str]) -> cedarpy.Entities:
        """The base entities plus the principal; ``key`` must determine ``principal_json()``."""
        # Built by the PDP from a verified identity, so it needs no schema check.
        return self._handles.get(key, lambda: self.base.with_added_json_str(principal_json()))

    def with_described(self, key: Hashable, entities: Callable[[], cedarpy.Entities],
                       described_json: bytes, schema: cedarpy.Schema) -> cedarpy.Entities:
        """``entities()`` plus the entities of ``described_json`` (a JSON list the PEP's
        request gave), checked against ``schema``; ``key`` must determine ``entities()``.
        Raises ``ValueError`` when they do not match the schema (nothing is kept)."""
        return self._described.get((key, described_json), lambda: entities().with_added_json_str(
            described_json.decode(), schema))
