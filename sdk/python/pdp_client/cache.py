"""A bounded decision cache that never serves an answer past the PDP's say-so.

The PDP gives every decision a ``valid_until``: never later than the
credential's expiry, and at most ``max_decision_ttl_s`` away. It also stamps
it with the **live-context version** (``context.version``), which changes on
every incident flip, risk change or revocation. An entry is served only while

- the local monotonic clock is before its expiry — computed as
  ``valid_until - timestamp`` (both from the PDP's clock, so clock skew between
  the service and the PDP does not matter) from the moment it was stored,
  capped by ``max_age_s``; and
- its context version is the latest one the cache has seen. Every answer from
  the PDP carries the current version, so as soon as any request observes a
  new one, every entry from before the flip is dead. A service that hears of
  changes out of band (e.g. a Redis subscription) calls ``observe_version``.

Only real decisions are cached: a fail-closed deny the SDK made itself (PDP
unreachable) never is. Least recently used entries go first when ``maxsize``
is reached.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pdp_client.models import Decision, Resource


@dataclass(frozen=True, slots=True)
class _Entry:
    decision: Decision
    expires_at: float
    version: str | None


class DecisionCache:
    """LRU of decisions keyed by (credential hash, action, resource, context).

    Args:
        maxsize: most entries kept (default 10,000).
        max_age_s: optional upper bound on how long any entry lives, whatever the
            PDP's ``valid_until`` says (a tighter bound on staleness for services
            that cannot observe context changes quickly).
        clock: monotonic seconds; tests pass a fake one.
    """

    def __init__(self, *, maxsize: int = 10_000, max_age_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize, self.max_age_s, self._clock = maxsize, max_age_s, clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._version: str | None = None
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def key(subject: Mapping[str, str], action: str, resource: Resource,
            context: Mapping[str, Any] | None) -> str:
        """A stable key; the credential enters only as its SHA-256."""
        credential = json.dumps(dict(subject), sort_keys=True)
        payload = json.dumps({
            "subject": hashlib.sha256(credential.encode()).hexdigest(),
            "action": action, "resource": resource.as_json(), "context": context or {},
        }, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(payload.encode()).hexdigest()

    @property
    def version(self) -> str | None:
        """The latest live-context version observed."""
        return self._version

    def observe_version(self, version: str | None) -> None:
        """The live context is now at ``version``: entries of any other version are stale."""
        if version is None:
            return
        with self._lock:
            if version != self._version:
                self._version = version
                stale = [k for k, e in self._entries.items()
                         if e.version is not None and e.version != version]
                for k in stale:
                    del self._entries[k]

    def get(self, key: str) -> Decision | None:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            if now >= entry.expires_at or (
                    entry.version is not None and self._version is not None
                    and entry.version != self._version):
                del self._entries[key]
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return replace(entry.decision, cached=True)

    def put(self, key: str, decision: Decision) -> None:
        """Keep ``decision`` until its ``valid_until`` (nothing without one)."""
        self.observe_version(decision.context_version)
        if decision.made_by_sdk or decision.valid_until is None or decision.timestamp is None:
            return
        ttl = (decision.valid_until - decision.timestamp).total_seconds()
        if self.max_age_s is not None:
            ttl = min(ttl, self.max_age_s)
        if ttl <= 0:
            return
        entry = _Entry(decision=decision, expires_at=self._clock() + ttl,
                       version=decision.context_version)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


__all__ = ["DecisionCache"]
