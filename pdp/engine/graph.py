"""The static entities' parent graph, for slicing: who is in what, transitively."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

Uid = tuple[str, str]


class EntityGraph:
    """Parents from ``entities.json``; ``ancestors`` follows them transitively (memoized)."""

    def __init__(self, parents: Mapping[Uid, tuple[Uid, ...]]) -> None:
        self._parents = dict(parents)
        self._closure: dict[Uid, frozenset[Uid]] = {}
        self._lock = threading.Lock()

    def ancestors(self, uid: Uid) -> frozenset[Uid]:
        found = self._closure.get(uid)
        if found is not None:
            return found
        seen: set[Uid] = set()
        stack = list(self._parents.get(uid, ()))
        while stack:
            parent = stack.pop()
            if parent not in seen:
                seen.add(parent)
                stack.extend(self._parents.get(parent, ()))
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
