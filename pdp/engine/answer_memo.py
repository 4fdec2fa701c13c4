"""An exact memo of Cedar's answers, per bundle: the same question is asked once.

A machine identity asks the same question (principal, action, resource, the
context its policies read) hundreds of times a minute, and Cedar answers it
afresh each time. Cedar is a pure function of what it is handed: the policy
set, the entities, the schema (or none), the principal, action and resource
uids, and the context as a JSON string. Nothing else enters an evaluation:

- Cedar has no clock, no randomness and no I/O. Its extension functions
  (``ip``, ``decimal``, ``datetime``, ``duration`` and their methods) compute
  from their arguments only; ``datetime`` has no "now": the time a policy sees
  is ``context.live.now``, which the PDP puts in the context, so it is part of
  the key (as are incident mode, risk levels and every other live value).
- Errors are values of the same function: a type error, a missing attribute,
  an overflow, a request the schema refuses (``NoDecision``) come out the same
  for the same inputs, so they are memoized like any answer. An exception out of
  the extension is not an answer and is never kept.
- cedarpy's ``PolicySet``, ``Entities`` and ``Schema`` handles are immutable
  (``with_*`` methods return new handles), so a handle stands for its content
  for as long as it lives. They hash and compare by identity, hence the key
  holds their ``id`` and the entry makes sure the id still names the same
  object (below).
- The one freedom Cedar has is the *order* in which it lists an answer's
  determining policies and errors (it collects them in a hash set);
  ``cedar_call`` sorts them, so a memoized answer reads exactly as a fresh one.

So the key is every one of those inputs: the three handles, the three uids and
the context's JSON text exactly as Cedar gets it. A request differing in
one byte of context, one attribute of an entity (a different entity handle) or
the resource is another key. Where the PDP sends Cedar only the context values
the policies can read (``pdp.engine.context_reads``), a live value no policy
reads does not split the key; that is what lets repeated questions hit.

**Lifetimes.** An id is only a name while its object lives. The policy set and
the schema are held by the entry (cedarpy's extension types take no weak
references), so their ids cannot be reused while the entry exists; the memory
this pins is counted (below). The entities are *not* held: a handle is a clone
of the bundle's entities plus the request's (often megabytes on a large bundle),
and its own cache (``pdp.engine.entity_cache``, ``entity_slice``) decides how
long it lives. The entry keeps a weak reference to the ``cedarpy.Entities``
wrapper and answers only when it is the very object being asked about; an entry
whose handle died is never served and ages out.

**Bounds.** At most ``max_entries`` answers and ``capacity`` bytes (the setting
``answer_memo_bytes``: 8 MB and 8,192 answers by default; 0 turns the memo off).
Each entry weighs its key and answer, and each policy set the memo holds counts
once, by the weight the caller gives (zero for the bundle's own set, which the bundle
holds anyway). The least recently used answer goes first. The memo belongs to
one bundle (``Bundle.answers``): a reload starts an empty one and the old one
goes with the old bundle. Decisions run on the event loop's thread and loads on
others; every read and write of the table is under one lock, and Cedar runs
outside it (two threads asking the same new question both ask Cedar, which is
harmless: the answers are the same). Nothing is shared across processes: each
forked worker fills its own.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cedarpy
import orjson

from pdp.engine import cedar_call
from pdp.engine.cache_budget import ANSWER_MEMO_BYTES, ANSWER_MEMO_ENTRIES
from pdp.engine.cedar_call import CedarResult

# What an entry costs besides its context and answer strings: the table's slot, the key
# tuple and its uid tuples, the entry, its weak reference and its answer's objects
# (tracemalloc over 5,000 entries: ~770 bytes besides those strings; bench/RESULTS.md).
ENTRY_OVERHEAD_BYTES = 800

_Key = tuple[int, int, int, int, tuple[str, str], tuple[str, str], tuple[str, str], str]


@dataclass(frozen=True, slots=True)
class _Entry:
    result: CedarResult
    # Held so that the key's ids cannot name another object while the entry lives.
    policy_set: cedarpy.PolicySet
    schema: cedarpy.Schema | None
    # Not held: the answer stands only while this is the object asked about.
    entities: weakref.ref[cedarpy.Entities]
    weight: int


@dataclass(frozen=True, slots=True)
class MemoStats:
    """What the memo holds and how often it answered (for tests and benchmarks)."""

    entries: int
    weight: int
    hits: int
    misses: int


class AnswerMemo:
    """Cedar's answers by every input Cedar reads, bounded by entries and bytes."""

    def __init__(self, capacity: int = ANSWER_MEMO_BYTES, max_entries: int | None = None,
                 ) -> None:
        """``capacity`` bytes (0: off); ``max_entries`` answers, by default as many as
        the default budget's per byte (8,192 in 8 MB)."""
        self._capacity = capacity
        self._max_entries = (capacity * ANSWER_MEMO_ENTRIES // ANSWER_MEMO_BYTES
                             if max_entries is None else max_entries)
        self._table: OrderedDict[_Key, _Entry] = OrderedDict()
        # Policy sets the entries hold, by id: [entries holding it, its weight].
        self._held: dict[int, list[int]] = {}
        self._weight = 0
        self._hits = 0
        self._misses = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._capacity > 0 and self._max_entries > 0

    def stats(self) -> MemoStats:
        with self._lock:
            return MemoStats(len(self._table), self._weight, self._hits, self._misses)

    def is_authorized(self, principal: Mapping[str, str], action: Mapping[str, str],
                      resource: Mapping[str, str], context: Mapping[str, Any],
                      policy_set: cedarpy.PolicySet, entities: cedarpy.Entities,
                      schema: cedarpy.Schema | None, *, policy_weight: int) -> CedarResult:
        """``cedar_call.is_authorized`` with the same arguments, answered from the memo
        when this exact question was asked before. ``policy_weight``: the bytes holding
        ``policy_set`` may keep alive (0 when something else keeps it for as long)."""
        # Decoded: the bytes orjson returns keep a 4 KB buffer each (measured, RSS), the
        # string holds what it says.
        context_json = orjson.dumps(context).decode()
        if not self.enabled:
            return cedar_call.is_authorized_json(principal, action, resource, context_json,
                                                 policy_set, entities, schema)
        key: _Key = (id(policy_set), id(entities), id(entities._inner), id(schema),
                     (principal["type"], principal["id"]), (action["type"], action["id"]),
                     (resource["type"], resource["id"]), context_json)
        table = self._table
        with self._lock:
            entry = table.get(key)
            if entry is not None and entry.entities() is entities:
                table.move_to_end(key)
                self._hits += 1
                return entry.result
            self._misses += 1
        result = cedar_call.is_authorized_json(principal, action, resource, context_json,
                                               policy_set, entities, schema)
        weight = (ENTRY_OVERHEAD_BYTES + len(context_json) + sum(map(len, key[4] + key[5]))
                  + sum(map(len, key[6])) + sum(map(len, result.reasons + result.errors)))
        self._keep(key, _Entry(result, policy_set, schema, weakref.ref(entities), weight),
                   policy_weight)
        return result

    def _keep(self, key: _Key, entry: _Entry, policy_weight: int) -> None:
        if entry.weight + policy_weight > self._capacity:
            return  # heavier than the whole memo: answered, not kept
        with self._lock:
            old = self._table.pop(key, None)  # a race, or a dead handle's id reused
            if old is not None:
                self._forget(old)
            self._table[key] = entry
            self._weight += entry.weight
            held = self._held.get(id(entry.policy_set))
            if held is None:
                self._held[id(entry.policy_set)] = [1, policy_weight]
                self._weight += policy_weight
            else:
                held[0] += 1
            while self._weight > self._capacity or len(self._table) > self._max_entries:
                _, dropped = self._table.popitem(last=False)
                self._forget(dropped)

    def _forget(self, entry: _Entry) -> None:
        """Take a removed entry's weight off (under the lock)."""
        self._weight -= entry.weight
        held = self._held[id(entry.policy_set)]
        held[0] -= 1
        if held[0] == 0:
            del self._held[id(entry.policy_set)]
            self._weight -= held[1]
