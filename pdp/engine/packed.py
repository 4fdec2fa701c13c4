"""Texts and string keys kept in immutable buffers, read without writing to them.

``pdp serve --workers N`` loads the bundle in the supervisor and forks the
workers, which share its pages until one of them writes to a page. CPython 3.11
writes an object's reference count every time it reads the object (a dict
lookup that returns a value, iterating a set of strings, a set lookup that
compares two equal but distinct ints), and ``gc.freeze`` spares only the
collector's writes. So every Python object a worker's decision reads has its
page copied into that worker (bench/RESULTS.md, branches hcow and hcow2).

What a decision reads of the bundle is therefore kept here as buffers: the
texts joined in one ``bytes`` with their offsets in an ``array('q')``, and keys
found through their sorted 64-bit hashes. A read allocates what it returns (a
new ``str``, new ``int`` positions) and writes no page the supervisor built.

The key hash is Python's own ``hash()`` of the key: randomized per interpreter,
so a table is only valid in the process that built it and its forks (it is never
written anywhere). Two keys may share a hash; a lookup then compares the texts
of each candidate. Texts are encoded with ``surrogatepass``, so any ``str``
(lone surrogates and NUL included) is stored and found as itself.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate


def _hash(key: str) -> int:
    """Where a key sorts (a module function, so a test can make all keys collide)."""
    return hash(key)


def uid_key(uid: tuple[str, str]) -> str:
    """An entity uid ``(type, id)`` as one key text. The type's length comes first, so
    no two uids share a key ("A\\0B", "C" and "A", "B\\0C" would, joined by a separator)."""
    return f"{len(uid[0])}:{uid[0]}{uid[1]}"


def uid_of_key(key: str) -> tuple[str, str]:
    """The uid :func:`uid_key` made ``key`` of."""
    length, _, rest = key.partition(":")
    return (rest[:int(length)], rest[int(length):])


def encode(text: str) -> bytes:
    """``text`` as stored: UTF-8, lone surrogates kept (``surrogatepass``)."""
    return text.encode("utf-8", "surrogatepass")


class PackedTexts(Sequence[str]):
    """Strings by position, joined in one ``bytes``; each read decodes a new ``str``."""

    def __init__(self, texts: Iterable[bytes]) -> None:
        chunks = list(texts)
        self._joined = b"".join(chunks)
        self._offsets = array("q", accumulate(map(len, chunks), initial=0))

    def raw(self, i: int) -> bytes:
        """The stored bytes of text ``i`` (a new object)."""
        offsets = self._offsets
        return self._joined[offsets[i]:offsets[i + 1]]

    def __getitem__(self, i: int) -> str:  # type: ignore[override]  # no slices
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.raw(i).decode("utf-8", "surrogatepass")

    def __len__(self) -> int:
        return len(self._offsets) - 1

    @property
    def nbytes(self) -> int:
        return len(self._joined) + self._offsets.itemsize * len(self._offsets)


class PackedKeys:
    """Distinct string keys, each found at a slot (``find``) in ``0 .. len - 1``.

    Build it with :func:`pack_keys`, which also says which key went to which slot, so
    that a caller can lay out its values slot by slot in buffers of its own.
    """

    def __init__(self, hashes: array[int], texts: PackedTexts) -> None:
        self._hashes = hashes
        self._texts = texts

    def find(self, key: str) -> int:
        """The slot of ``key``, or -1."""
        wanted = _hash(key)
        hashes = self._hashes
        i = bisect_left(hashes, wanted)
        if i == len(hashes) or hashes[i] != wanted:
            return -1
        encoded = encode(key)
        while i < len(hashes) and hashes[i] == wanted:
            if self._texts.raw(i) == encoded:
                return i
            i += 1
        return -1

    def __iter__(self) -> Iterator[str]:
        """The keys, slot by slot."""
        return iter(self._texts)

    def __len__(self) -> int:
        return len(self._hashes)

    @property
    def nbytes(self) -> int:
        return self._texts.nbytes + self._hashes.itemsize * len(self._hashes)


def pack_keys(keys: Iterable[str]) -> tuple[PackedKeys, list[int]]:
    """The distinct ``keys`` packed, and for each slot the position in ``keys`` of the
    key stored there (its last occurrence, as a dict built from ``keys`` would keep)."""
    last = {key: i for i, key in enumerate(keys)}
    distinct = list(last)
    hashes = list(map(_hash, distinct))
    order = sorted(range(len(distinct)), key=hashes.__getitem__)
    packed = PackedKeys(array("q", [hashes[i] for i in order]),
                        PackedTexts(encode(distinct[i]) for i in order))
    return packed, [last[distinct[i]] for i in order]


__all__ = ["PackedKeys", "PackedTexts", "encode", "pack_keys", "uid_key", "uid_of_key"]
