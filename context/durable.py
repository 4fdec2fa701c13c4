"""Administrative live state that survives restarts: the durable store is authoritative.

Revocations, incidents, administrator-set risk levels and task grants are
committed to the decision log's store (:mod:`pdp.audit.admin_state`: the
SQLite file or the PostgreSQL schema, met through ``context.admin_store``)
*before* a change is acknowledged.
Each replica holds a :class:`DurableState`: the last snapshot it read, and
when it last confirmed that snapshot is current. Decisions read only that
local copy (no I/O per request); it is kept current by

- the writer itself, which reloads right after its commit;
- **Redis pub/sub** (``[context] backend = "redis"``): a writer publishes
  ``admin`` on ``<prefix>:changes`` and every replica reloads from the durable
  store at once;
- **polling**: every ``resync_s`` a replica reads the store's ``(epoch, version)``
  (one small query) and reloads when it moved, so a missed message, or a
  replica without Redis (``--workers N``, several replicas on one
  PostgreSQL), catches up; each successful poll *confirms* the copy, whether
  Redis is up or not.

Redis is fan-out and cache (``context.redis_seed``): its ``revocations`` and
``context`` hashes are (re)seeded from the durable snapshot whenever they do
not hold it (a fresh or restarted, empty Redis; a write that could not reach
Redis). A seed is guarded by the version recorded in
``<prefix>:admin:seeded:<epoch>``, so an older snapshot never overwrites a
newer one; where Redis and the durable copy disagree, the durable copy wins.

While the copy is older than ``max_age_s`` (the store cannot be read), the
replica cannot know the current revocations: :meth:`DurableState.known` is
False, credential-bearing decisions deny with ``identity.revocation_unknown``
and ``/readyz`` answers 503. See docs/context.md, "Durable state".

Automatic risk raises by the behaviour monitor are *not* kept here: they are
derived from traffic, decay within minutes, are re-derived by new traffic,
and writing them would let anyone who can send requests drive writes into
the decision log's store. They stay in process (and in Redis, shared).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from context.admin_store import AdminSnapshot, AdminStateStore, AdminStateUnavailable, AdminWrite
from context.redis_seed import DurableMirror, RedisSeeder
from context.revocations import RevocationEntry, RevocationIndex
from context.state import (
    AUTO_RISK_PREFIX,
    ContextChange,
    ContextState,
    Entry,
    entry_from_json,
    entry_to_json,
)
from context.store import ContextStore, ContextUnavailable, StoreView

log = logging.getLogger("pdp.context.durable")

Listener = Callable[[AdminSnapshot], None]


class DurableState:
    """This replica's copy of the durable admin state, and how fresh it is.

    Opening loads the store once and raises ``AdminStateUnavailable`` if it cannot:
    a PDP that cannot know its revocations does not start.
    """

    def __init__(self, store: AdminStateStore, *, max_age_s: float = 30.0,
                 resync_s: float = 1.0) -> None:
        self.store = store
        self.max_age_s = max_age_s
        self.resync_s = resync_s
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._snapshot = store.load()
        self._confirmed = time.monotonic()
        self._stale_local = False     # our own write is applied locally, not yet re-read
        self.error: str | None = None
        self._redis: RedisSeeder | None = None  # context.redis_seed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- reading ---------------------------------------------------------------

    @property
    def snapshot(self) -> AdminSnapshot:
        return self._snapshot

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` with the current snapshot now and with every new one."""
        with self._lock:
            self._listeners.append(listener)
            listener(self._snapshot)

    def age_s(self) -> float:
        """Seconds since the copy was last confirmed with the durable store."""
        return time.monotonic() - self._confirmed

    def known(self) -> bool:
        """Is the copy fresh enough to decide on (confirmed within ``max_age_s``)?"""
        return self.age_s() <= self.max_age_s

    def health(self) -> dict[str, Any]:
        """For ``/readyz``: ``known`` False means credential-bearing decisions deny."""
        snap = self._snapshot
        return {"known": self.known(), "source": self.store.source,
                "durable": self.store.durable, "version": f"{snap.epoch}.{snap.version}",
                "age_s": round(self.age_s(), 3), "max_age_s": self.max_age_s,
                "error": self.error}

    def refresh(self, *, full: bool = False) -> None:
        """Confirm the copy, reloading if the store moved (raises ``AdminStateUnavailable``)."""
        try:
            snap = self._snapshot
            if not full and not self._stale_local and self.store.version() == (
                    snap.epoch, snap.version):
                self._confirmed, self.error = time.monotonic(), None
                return
            self._install(self.store.load())
        except AdminStateUnavailable as e:
            self.error = str(e)[:300]
            raise

    # -- writing ---------------------------------------------------------------

    def write(self, topic: str, puts: Mapping[str, str] | None = None,
              deletes: Collection[str] = (), *, only_new: bool = False) -> AdminWrite:
        """Commit a change durably, then make it visible here and on every replica.

        Raises ``ContextUnavailable`` (nothing changed) when the store cannot commit.
        """
        try:
            result = self.store.write(topic, puts or {}, deletes, only_new=only_new)
        except AdminStateUnavailable as e:
            raise ContextUnavailable(f"the change was not made: {e}") from e
        try:
            self.refresh(full=True)
        except AdminStateUnavailable:
            # Committed but not re-read: apply it here so this replica enforces it now.
            self._apply_locally(topic, puts or {}, deletes, only_new=only_new,
                                version=result.version)
        self.announce()
        return result

    def announce(self) -> None:
        """Seed Redis with the current snapshot and tell every replica to reload."""
        seeder = self._redis
        if seeder is None:
            return
        try:
            seeder.seed(self._snapshot)
            seeder.publish()
        except seeder.link.errors as e:
            seeder.link.failed(e)  # the change is durable; polling and the next seed catch up

    # -- keeping current -------------------------------------------------------

    def attach_redis(self, link: Any) -> None:
        """Share changes through ``link`` (a ``context.redis_backend.RedisLink``)."""
        self._redis = RedisSeeder(link)
        link.attach(DurableMirror(self, self._redis))

    def start_polling(self) -> None:
        """Poll the store every ``resync_s`` in a daemon thread (with or without Redis)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._poll, name="pdp-admin-state", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)
        self.store.close()

    def _poll(self) -> None:
        while not self._stop.wait(self.resync_s):
            self.refresh_quietly()

    def refresh_quietly(self, *, full: bool = False) -> None:
        """:meth:`refresh`, logging (once per outage) instead of raising."""
        was_failing = self.error is not None
        try:
            self.refresh(full=full)
            if was_failing:
                log.info("admin state %s available again", self.store.source)
        except AdminStateUnavailable as e:
            if not was_failing:
                log.warning("admin state %s unavailable: %s", self.store.source, e)
        except Exception:  # noqa: BLE001 - a bug must not stop the replica's sync
            log.exception("admin state refresh")

    def _install(self, snap: AdminSnapshot) -> None:
        with self._lock:
            current = self._snapshot
            if (snap.epoch == current.epoch and snap.version < current.version
                    and not self._stale_local):
                return  # an older read finished after a newer one
            moved = (snap.epoch, snap.version) != (current.epoch, current.version)
            was_local = self._stale_local
            self._snapshot, self._stale_local = snap, False
            self._confirmed, self.error = time.monotonic(), None
            if moved or was_local:
                self._notify(snap)

    def _apply_locally(self, topic: str, puts: Mapping[str, str], deletes: Collection[str],
                       *, only_new: bool, version: int) -> None:
        with self._lock:
            current = self._snapshot
            rows = dict(current.rows(topic))
            for key in deletes:
                rows.pop(key, None)
            for key, body in puts.items():
                if not (only_new and key in rows):
                    rows[key] = body
            snap = AdminSnapshot(current.epoch, version, {**current.topics, topic: rows})
            self._snapshot, self._stale_local = snap, True
            self._notify(snap)

    def _notify(self, snap: AdminSnapshot) -> None:
        for listener in self._listeners:
            try:
                listener(snap)
            except Exception:  # noqa: BLE001 - one bad row must not hide the others
                log.exception("admin state listener")


class TopicRows:
    """Whether a new snapshot changed one topic's rows: every listener hears every
    change (a revocation, a grant, a broker task), and re-reading rows that did not
    change costs a parse of each (and, for context, a new context version)."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._seen: Mapping[str, str] | None = None

    def moved(self, snap: AdminSnapshot) -> bool:
        rows = snap.rows(self.topic)
        if self._seen is not None and rows == self._seen:
            return False
        self._seen = dict(rows)
        return True


class DurableRevocationStore:
    """Revocations from the durable copy (``context.revocations.RevocationStore``).

    ``add`` and ``remove`` commit to the durable store first and raise
    ``ContextUnavailable`` when they cannot: a revocation is acknowledged only
    once a restart cannot lose it. ``check`` matches the local index, and also
    ``shared`` (the Redis copy, when configured: what replicas with a store of
    their own revoked) — a credential either refuses is refused. ``known``
    says whether the durable copy may be trusted.
    """

    topic = "revocations"

    def __init__(self, state: DurableState, shared: Any | None = None) -> None:
        self.state = state
        self.shared = shared  # context.redis_backend.RedisRevocationStore
        self._entries: dict[str, RevocationEntry] = {}
        self._index = RevocationIndex(())
        self._version = 0
        self._rows = TopicRows(self.topic)
        state.subscribe(self._load)

    @property
    def version(self) -> int:
        return self._version

    def known(self) -> bool:
        return self.state.known()

    def health(self) -> dict[str, Any]:
        return {**self.state.health(), "entries": len(self._entries)}

    def add(self, entry: RevocationEntry) -> tuple[RevocationEntry, bool]:
        body = json.dumps(entry.to_json(), sort_keys=True)
        result = self.state.write(self.topic, {entry.id: body}, only_new=True)
        existing = result.before.get(entry.id)
        if existing is not None:
            return RevocationEntry.from_json(json.loads(existing)), False
        return entry, True

    def remove(self, entry_id: str) -> RevocationEntry | None:
        result = self.state.write(self.topic, deletes=(entry_id,))
        old = result.before.get(entry_id)
        if self.shared is not None:  # another store's row (the seed removes only our own)
            try:
                shared_old = self.shared.remove(entry_id)
            except ContextUnavailable:
                shared_old = None  # Redis down: our own row goes with the next seed
            old = old if old is not None or shared_old is None else json.dumps(
                shared_old.to_json())
        return RevocationEntry.from_json(json.loads(old)) if old is not None else None

    def list(self) -> list[RevocationEntry]:
        entries = dict(self._entries)
        for e in self.shared.list() if self.shared is not None else ():
            entries.setdefault(e.id, e)
        return sorted(entries.values(), key=lambda e: (
            e.created_at.timestamp() if e.created_at is not None else 0.0, e.id))

    def check(self, facts: Any, now: Any) -> RevocationEntry | None:
        entry = self._index.match(facts, now)
        if entry is None and self.shared is not None:
            entry = self.shared.check(facts, now)
        return entry

    def _load(self, snap: AdminSnapshot) -> None:
        if not self._rows.moved(snap):
            return  # another topic changed (a task, a grant): the index stays as it is
        entries = {}
        for key, body in snap.rows(self.topic).items():
            try:
                entries[key] = RevocationEntry.from_json(json.loads(body))
            except (ValueError, KeyError, TypeError) as e:
                log.warning("ignoring malformed revocation %s: %s", key, e)
        self._entries, self._index = entries, RevocationIndex(entries.values())
        self._version = snap.version


class DurableContextStore:
    """Incidents and administrator-set risk from the durable copy, over ``inner``.

    ``inner`` (``InMemoryStore`` or ``RedisContextStore``) keeps the automatic
    risk raises and says how fresh shared values are; every other entry comes
    from the durable store, which wins where the two disagree.
    """

    topic = "context"

    def __init__(self, inner: ContextStore, state: DurableState) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.state = state
        self._admin: tuple[str, dict[str, Entry]] = ("", {})
        self._merged: tuple[object, object, ContextState] | None = None
        self._rows = TopicRows(self.topic)
        state.subscribe(self._load)

    def view(self) -> StoreView:
        inner = self.inner.view()
        admin, merged = self._admin, self._merged
        if merged is None or merged[0] is not inner.state or merged[1] is not admin:
            # A shared (Redis) copy also holds what replicas with a store of their own
            # set, and its version is the one every replica reports; ours overrides it.
            entries: dict[str, Entry] = {k: v for k, v in inner.state.entries.items()
                                         if inner.shared or k.startswith(AUTO_RISK_PREFIX)}
            entries.update(admin[1])
            version = inner.state.version if inner.shared else f"{admin[0]}/{inner.state.version}"
            merged = (inner.state, admin, ContextState.of(entries, version))
            self._merged = merged
        # ``inner`` with the merged state; built directly, as ``dataclasses.replace`` would
        # (its field walk cost more than the rest of this per decision).
        return StoreView(merged[2], inner.source, inner.age_s, inner.reachable, inner.error,
                         inner.shared)

    def apply(self, change: ContextChange) -> ContextState:
        """Commit the administrator's part durably; hand automatic entries to ``inner``."""
        admin_puts = {k: entry_to_json(v) for k, v in change.puts.items() if not _auto(k)}
        admin_deletes = tuple(k for k in change.deletes if not _auto(k))
        automatic = ContextChange(puts={k: v for k, v in change.puts.items() if _auto(k)},
                                  deletes=tuple(k for k in change.deletes if _auto(k)))
        if admin_puts or admin_deletes:
            self.state.write(self.topic, admin_puts, admin_deletes)  # seeds Redis too
        if automatic:
            self.inner.apply_soon(automatic)
        link = getattr(self.inner, "link", None)  # RedisContextStore
        if link is not None:
            try:  # another store's rows are deleted directly; then read Redis back
                if admin_deletes:
                    self.inner.apply(ContextChange(deletes=admin_deletes))
                else:
                    # A RedisContextStore (it has a link), which ContextStore does not name.
                    self.inner.reload(full=True)  # type: ignore[attr-defined]
            except (ContextUnavailable, *link.errors):
                pass  # durable already; Redis is reseeded when it is back
        return self.view().state

    def apply_soon(self, change: ContextChange) -> None:
        self.inner.apply_soon(change)

    def close(self) -> None:
        self.inner.close()

    def _load(self, snap: AdminSnapshot) -> None:
        if not self._rows.moved(snap):
            return  # another topic changed: the context version stays (PEP caches keep)
        entries: dict[str, Entry] = {}
        for key, body in snap.rows(self.topic).items():
            try:
                entries[key] = entry_from_json(body)
            except (ValueError, KeyError, TypeError) as e:
                log.warning("ignoring malformed context entry %s: %s", key, e)
        self._admin = (f"{snap.epoch}.{snap.version}", entries)


def _auto(key: str) -> bool:
    return key.startswith(AUTO_RISK_PREFIX)


__all__ = ["DurableContextStore", "DurableRevocationStore", "DurableState", "TopicRows"]
