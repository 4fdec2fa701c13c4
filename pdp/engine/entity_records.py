"""The static entities of ``entities.json``, kept in one immutable buffer.

Why not a dict of the parsed entities: ``pdp serve --workers N`` loads the bundle
in the supervisor and forks the workers, which share its pages until one of them
writes to a page. CPython 3.11 writes an object's reference count every time it
reads the object (a dict lookup that finds a tuple key increments and decrements
that key; returning a record increments it), and ``gc.freeze`` spares only the
collector's writes. So every entity a worker's decision touched had its pages
copied into that worker: with 100,000 entities and traffic on distinct resources,
~29 MB per worker after 3,000 decisions, besides the ~130 MB the dicts took in the
first place (bench/RESULTS.md, branch hcow).

Here each entity is its JSON text in one ``bytes`` (``_records``), found through
two ``array('q')`` (the 64-bit hashes of the uids, sorted, and the offsets of each
text): a lookup reads these buffers and allocates what it returns, so it writes
no page the supervisor built. A record is decoded per lookup (``load_json``: the
value ``entities.json`` gave, big integers and ``NaN`` included), so callers get
a fresh dict each time and may not rely on identity; that costs ~1-2 µs, paid only
when a request's entity set is built (the sets are cached). A membership test
(is this resource the bundle's?) compares the uid's text and decodes nothing.

The uid hash is Python's own ``hash()`` of the uid's text: randomized per
interpreter, so the index is only valid in the process that built it and its
forks (it is never written anywhere). Two uids may share a hash; a lookup then
compares the uid texts of each candidate.
"""

from __future__ import annotations

import json
import math
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from itertools import accumulate
from typing import Any

import orjson

from pdp.engine.json_load import load_json

Uid = tuple[str, str]


def _key(uid: Uid) -> str:
    # The type's length first: no two uids share a key text, whatever their characters
    # ("A\0B", "C" and "A", "B\0C" would, joined by a separator).
    return f"{len(uid[0])}:{uid[0]}{uid[1]}"


def _hash(key: str) -> int:
    """Where a key sorts in the index (a module function, so a test can make all collide)."""
    return hash(key)


def _encoded(values: Iterable[Any]) -> tuple[bytes, array[int]]:
    """The values' JSON texts joined, and their offsets (one more than the values).

    Each text reads back (:func:`load_json`) as its value exactly. orjson writes almost
    all of them (in C: ~1 µs an entity); what it refuses (an integer beyond 64 bits, a
    lone surrogate) or writes inexactly (NaN and the infinities as ``null``) is written
    by the standard library, as ``json.loads`` reads it. Cedar's entities hold neither
    floats nor nulls, so a text with ``null`` in it is rare, and only such a text's value
    is searched for a float.

    Each text is appended as soon as it is written and dropped: orjson gives each its
    own ~4 KB buffer, and 100,000 of them kept in a list until a join took ~420 MB at
    the peak of a load (measured, bench/RESULTS.md, branch hcow).
    """
    joined = bytearray()
    offsets = array("q", [0])
    for value in values:
        try:
            text = orjson.dumps(value)
        except TypeError:
            text = json.dumps(value).encode()
        if b"null" in text and not _exact(value):
            text = json.dumps(value).encode()
        joined += text
        offsets.append(len(joined))
    return bytes(joined), offsets


def _exact(value: Any) -> bool:
    """Whether ``value`` holds no NaN or infinity (which orjson writes as ``null``)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_exact(v) for v in value.values())
    if isinstance(value, list):
        return all(_exact(v) for v in value)
    return True


class EntityRecords(Mapping[Uid, dict[str, Any]]):
    """Entities by uid (``(type, id)``, as ``str``), each decoded on lookup.

    Built from ``(uid, entity)`` pairs; a uid given twice keeps its last entity, as a
    dict would. Immutable: nothing a lookup does writes to it.
    """

    def __init__(self, entities: Iterable[tuple[Uid, dict[str, Any]]]) -> None:
        latest = {_key(uid): entity for uid, entity in entities}
        keys, values = list(latest), list(latest.values())
        hashes = list(map(_hash, keys))
        order = sorted(range(len(keys)), key=hashes.__getitem__)
        self._hashes = array("q", [hashes[i] for i in order])
        self._keys, self._key_offsets = _pack(
            [keys[i].encode("utf-8", "surrogatepass") for i in order])
        self._records, self._record_offsets = _encoded(values[i] for i in order)

    def _find(self, uid: Uid) -> int:
        """The position of ``uid``, or -1."""
        key = _key(uid)
        wanted = _hash(key)
        hashes = self._hashes
        i = bisect_left(hashes, wanted)
        if i == len(hashes) or hashes[i] != wanted:
            return -1
        encoded = key.encode("utf-8", "surrogatepass")
        offsets = self._key_offsets
        while i < len(hashes) and hashes[i] == wanted:
            if self._keys[offsets[i]:offsets[i + 1]] == encoded:
                return i
            i += 1
        return -1

    def _decode(self, i: int) -> dict[str, Any]:
        offsets = self._record_offsets
        record: dict[str, Any] = load_json(self._records[offsets[i]:offsets[i + 1]])
        return record

    def __getitem__(self, uid: Uid) -> dict[str, Any]:
        i = self._find(uid)
        if i < 0:
            raise KeyError(uid)
        return self._decode(i)

    def __contains__(self, uid: object) -> bool:
        return (isinstance(uid, tuple) and len(uid) == 2
                and isinstance(uid[0], str) and isinstance(uid[1], str)
                and self._find((uid[0], uid[1])) >= 0)

    def __iter__(self) -> Iterator[Uid]:
        offsets = self._key_offsets
        for i in range(len(self._hashes)):
            length, _, rest = self._keys[offsets[i]:offsets[i + 1]].decode(
                "utf-8", "surrogatepass").partition(":")
            yield (rest[:int(length)], rest[int(length):])

    def __len__(self) -> int:
        return len(self._hashes)

    def attrs(self) -> Mapping[Uid, Mapping[str, Any]]:
        """Each entity's ``attrs`` (``{}`` when it gives none), by uid."""
        return _Attrs(self)

    @property
    def nbytes(self) -> int:
        """The bytes the buffers hold (for the memory bench)."""
        return (len(self._records) + len(self._keys) + self._hashes.itemsize * (
            len(self._hashes) + len(self._key_offsets) + len(self._record_offsets)))


def _pack(texts: list[bytes]) -> tuple[bytes, array[int]]:
    """The texts joined, and their offsets (``len(texts) + 1`` of them)."""
    return b"".join(texts), array("q", accumulate(map(len, texts), initial=0))


class _Attrs(Mapping[Uid, Mapping[str, Any]]):
    """The ``attrs`` view of :class:`EntityRecords`."""

    def __init__(self, records: EntityRecords) -> None:
        self._records = records

    def __getitem__(self, uid: Uid) -> Mapping[str, Any]:
        attrs: Mapping[str, Any] = self._records[uid].get("attrs") or {}
        return attrs

    def __contains__(self, uid: object) -> bool:
        return uid in self._records

    def __iter__(self) -> Iterator[Uid]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)


__all__ = ["EntityRecords"]
