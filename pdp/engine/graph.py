"""The static entities' parent graph, for slicing: who is in what, transitively."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

Uid = tuple[str, str]


class EntityGraph:
    """Parents from ``entities.json`` (``parents(uid)``: an entity's own parents, empty
    for one the bundle does not define); ``ancestors`` follows them transitively,
    memoized per uid in the process that asks (a forked worker's memo is its own).

    ``parents`` reads the bundle's records (:class:`pdp.engine.entity_records.EntityRecords`)
    rather than a dict of tuples built at load: a forked worker that looked a uid up in
    such a dict wrote the reference counts of its key and parents, copying their pages.
    """

    def __init__(self, parents: Callable[[Uid], tuple[Uid, ...]]) -> None:
        self._parents = parents
        self._closure: dict[Uid, frozenset[Uid]] = {}
        self._lock = threading.Lock()

    def ancestors(self, uid: Uid) -> frozenset[Uid]:
        found = self._closure.get(uid)
        if found is not None:
            return found
        seen: set[Uid] = set()
        stack = list(self._parents(uid))
        while stack:
            parent = stack.pop()
            if parent not in seen:
                seen.add(parent)
                stack.extend(self._parents(parent))
        result = frozenset(seen)
        with self._lock:
            self._closure[uid] = result
        return result

    def ancestors_of_all(self, uids: Iterable[Uid]) -> frozenset[Uid]:
        """The given uids and all their ancestors."""
        out: set[Uid] = set()
        for uid in uids:
            out.add(uid)
            out |= self.ancestors(uid)
        return frozenset(out)
