"""The static entities' parent graph, for slicing: who is in what, transitively."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pdp.engine.cache_budget import ANCESTOR_SETS
from pdp.engine.memo import Memo

Uid = tuple[str, str]


class EntityGraph:
    """Parents from ``entities.json`` (``parents(uid)``: an entity's own parents, empty
    for one the bundle does not define); ``ancestors`` follows them transitively,
    memoized per uid in the process that asks (a forked worker's memo is its own), for
    at most ``budget`` uids: a request's uids are any the PEP names, so an unbounded memo
    grew with every distinct one (~450 bytes each: 40 MB per worker over 100,000
    datasets). It is read only when a request's entity set or scope slice is built.

    ``parents`` reads the bundle's records (:class:`pdp.engine.entity_records.EntityRecords`)
    rather than a dict of tuples built at load: a forked worker that looked a uid up in
    such a dict wrote the reference counts of its key and parents, copying their pages.
    """

    def __init__(self, parents: Callable[[Uid], tuple[Uid, ...]],
                 budget: int = ANCESTOR_SETS) -> None:
        self._parents = parents
        self._closure: Memo[Uid, frozenset[Uid]] = Memo(budget)

    def ancestors(self, uid: Uid) -> frozenset[Uid]:
        def walk() -> frozenset[Uid]:
            seen: set[Uid] = set()
            stack = list(self._parents(uid))
            while stack:
                parent = stack.pop()
                if parent not in seen:
                    seen.add(parent)
                    stack.extend(self._parents(parent))
            return frozenset(seen)

        return self._closure.get(uid, walk)

    def __len__(self) -> int:
        """How many uids' ancestors are kept."""
        return len(self._closure)

    def ancestors_of_all(self, uids: Iterable[Uid]) -> frozenset[Uid]:
        """The given uids and all their ancestors."""
        out: set[Uid] = set()
        for uid in uids:
            out.add(uid)
            out |= self.ancestors(uid)
        return frozenset(out)
