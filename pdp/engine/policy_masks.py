"""Sets of policies as bitmasks over their positions, and buckets of them by key.

The scope index (:mod:`pdp.engine.slicing`) answers "which policies could match
this request" by unions and intersections of buckets of policies. Held as Python
sets of policy ids, every request that built a new scope slice in a forked worker
wrote the reference counts of the ids it iterated and of the sets it read, copying
their pages out of the supervisor (~8 MB per worker after 3,000 distinct requests
at 10,000 policies: bench/RESULTS.md, branch hcow2). Here a set of policies is an
``int`` whose bit ``i`` stands for the policy at position ``i``: a union is ``|``, an
intersection ``&``, and each result is a new object of the worker's own. The few
big buckets (unconstrained scopes, ``is T`` by type, action scopes) are such
ints, one object each; the many small ones (one per entity a scope names) are
lists of positions in one buffer (:class:`PositionBuckets`), found by the entity's
key text (:mod:`pdp.engine.packed`), so reading one writes nothing shared.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping
from itertools import accumulate, chain

from pdp.engine.packed import pack_keys


def mask_of(positions: Iterable[int], width: int) -> int:
    """The bitmask of ``positions`` (each in ``0 .. width - 1``)."""
    bits = bytearray((width + 7) // 8)
    for i in positions:
        bits[i >> 3] |= 1 << (i & 7)
    return int.from_bytes(bits, "little")


def positions_of(mask: int) -> Iterator[int]:
    """The positions of the bits set in ``mask`` (not negative), lowest first."""
    text = bin(mask)[:1:-1]  # lowest bit first, without the "0b"
    i = text.find("1")
    while i >= 0:
        yield i
        i = text.find("1", i + 1)


class PositionBuckets:
    """Sets of positions by key text, in buffers: ``mask(keys)`` is their union."""

    def __init__(self, buckets: Mapping[str, Iterable[int]], width: int) -> None:
        self._width = width
        self._keys, order = pack_keys(buckets)
        given = list(buckets.values())
        lists = [sorted(set(given[i])) for i in order]
        if any(not 0 <= p < width for p in chain.from_iterable(lists)):
            raise ValueError(f"a position is outside 0 .. {width - 1}")
        self._positions = array("q", chain.from_iterable(lists))
        self._offsets = array("q", accumulate(map(len, lists), initial=0))

    def mask(self, keys: Iterable[str]) -> int:
        """The bitmask of every position filed under one of ``keys`` (absent keys: none)."""
        bits = bytearray((self._width + 7) // 8)
        positions, offsets = self._positions, self._offsets
        for key in keys:
            slot = self._keys.find(key)
            if slot >= 0:
                for i in positions[offsets[slot]:offsets[slot + 1]]:
                    bits[i >> 3] |= 1 << (i & 7)
        return int.from_bytes(bits, "little")

    def __len__(self) -> int:
        return len(self._keys)


__all__ = ["PositionBuckets", "mask_of", "positions_of"]
