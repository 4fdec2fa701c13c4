"""Per-request entity sets for bundles with many entities.

Cedar reads only the entities a request can reach: the principal and the
resource with their ancestors (for ``in``), the entities their attributes
point to (for ``resource.owner.team``), the entities the request's context
names (``context.doc in Folder::"x"``) and entities named by the policies'
conditions (``App::Config::"limits".max``). Handing Cedar exactly those keeps
a decision's cost independent of how many entities the bundle has; cloning a
100,000-entity base per principal would cost ~0.1 s. Reaching more than
needed is harmless; the closure below errs that way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

import cedarpy

from pdp.engine.cache_budget import ENTITY_SLICE_COPIES
from pdp.engine.graph import EntityGraph
from pdp.engine.memo import Memo

Uid = tuple[str, str]

# Above this many static entities a request gets its own small entity set.
ENTITY_SLICE_MIN = 2000


class EntitySlicer:
    def __init__(self, records: Mapping[Uid, dict[str, Any]], graph: EntityGraph,
                 schema: cedarpy.Schema, literals: Iterable[Uid],
                 budget: int = ENTITY_SLICE_COPIES) -> None:
        self._records = records
        self._graph = graph
        self._schema = schema
        self._literals = frozenset(literals)
        # Each set weighs its entity count (what its memory grows with).
        self._cache: Memo[Hashable, tuple[cedarpy.Entities, int]] = Memo(
            budget, weigh=lambda _key, built: built[1])

    def entities(self, key: Hashable, request_entities: Callable[[], list[dict[str, Any]]],
                 roots: Iterable[Uid]) -> cedarpy.Entities:
        """The entity set for a request: its own entities (``request_entities()``: the
        principal, a described resource; built only when the set is) and everything
        reachable from ``roots`` (the principal and resource uids, which may be static).
        ``key`` must determine all of it (it names the cache entry)."""
        def build() -> tuple[cedarpy.Entities, int]:
            closure = self._closure(request_entities(), roots)
            return cedarpy.Entities.from_json_str(json.dumps(closure), self._schema), len(closure)

        return self._cache.get(key, build)[0]

    def _closure(self, request_entities: list[dict[str, Any]],
                 roots: Iterable[Uid]) -> list[dict[str, Any]]:
        given = {(e["uid"]["type"], e["uid"]["id"]): e for e in request_entities}
        out: dict[Uid, dict[str, Any]] = dict(given)
        stack: list[Uid] = [*self._literals, *roots]
        for entity in request_entities:
            stack += [(p["type"], p["id"]) for p in entity.get("parents", [])]
            stack += references(entity.get("attrs"))
        for uid in given:
            stack += self._graph.ancestors(uid)
        while stack:
            uid = stack.pop()
            if uid in out:
                continue
            record = self._records.get(uid)
            if record is None:
                continue
            out[uid] = record
            stack += self._graph.ancestors(uid)
            stack += references(record.get("attrs"))
        return list(out.values())


def references(value: Any) -> list[Uid]:
    """Entity uids an attribute value may point to (``{"__entity": ...}`` or ``{type, id}``)."""
    found: list[Uid] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            ref = v.get("__entity", v)
            if isinstance(ref, dict) and set(ref) == {"type", "id"}:
                found.append((str(ref["type"]), str(ref["id"])))
            else:
                stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return found
