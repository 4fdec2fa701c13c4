"""Live context and revocations shared by several replicas through Redis.

Each replica keeps a *local copy* and decides from it: no decision waits on
the network. The copy is kept current by

- **pub/sub**: every change is written in one ``MULTI``/``EXEC`` transaction
  that also bumps a version counter and publishes the topic that changed on
  ``<prefix>:changes``; each replica's subscriber thread reloads that topic
  (one round trip), so a change made through one replica is enforced by all
  within milliseconds;
- **resync**: every ``resync_s`` the thread compares the version counters
  (one round trip) and reloads what moved: a missed message is caught up, and
  each successful check *confirms* the copy (its age drops to zero).

When Redis is unreachable the copy keeps serving until its maximum age (see
``context.live.Freshness``), then the conservative defaults apply; writes by
administrators fail (``ContextUnavailable``, HTTP 503) rather than pretend;
automatic risk raises are enforced locally at once and written when Redis is
back. The thread reconnects on its own. Keys (``prefix`` default ``pdp``)::

    <prefix>:epoch                 random id, set once: versions from different
                                   Redis lifetimes never collide
    <prefix>:context:state         hash: entry key -> JSON (see context.state)
    <prefix>:context:version       counter
    <prefix>:revocations           hash: revocation id -> JSON (context.revocations)
    <prefix>:revocations:version   counter
    <prefix>:changes               pub/sub channel; message = topic that changed

What administrators set is kept durably elsewhere (``context.durable``): a
Redis that comes back empty (a new epoch) is reseeded from it. Only automatic
risk raises live in Redis alone (``appendonly yes`` keeps them too).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from context.revocations import RevocationEntry, RevocationIndex
from context.state import ContextChange, ContextState, entry_from_json, entry_to_json
from context.store import ContextUnavailable, StoreView

log = logging.getLogger("pdp.context.redis")

CONTEXT_TOPIC = "context"
REVOCATIONS_TOPIC = "revocations"


class _Mirror(Protocol):
    topic: str

    def reload(self, *, full: bool) -> None:
        """Bring the local copy up to date (``full=False``: only if the version moved)."""
        ...

    def flush(self) -> None:
        """Write local changes that could not be written yet."""
        ...


class RedisLink:
    """One Redis client and one subscriber thread serving every mirror of this replica."""

    def __init__(self, url: str, *, prefix: str = "pdp", resync_s: float = 1.0,
                 timeout_s: float = 0.5) -> None:
        # redis is optional (the `redis` extra): imported only when a Redis backend is used.
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        # Fail fast, never retry inside a call: the thread retries, callers get an answer.
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            socket_keepalive=True,  # a peer that vanished is noticed on idle connections too
            retry=Retry(NoBackoff(), 0), decode_responses=True)
        self.source = _without_password(url)
        self.prefix = prefix
        self.channel = f"{prefix}:changes"
        self.epoch_key = f"{prefix}:epoch"
        self.resync_s = resync_s
        self.reachable = False
        self.error: str | None = None
        self._mirrors: dict[str, _Mirror] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        """What a Redis call raises when Redis is unreachable or refuses."""
        return self._errors

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def attach(self, mirror: _Mirror) -> None:
        """Serve ``mirror`` from now on: load it (if Redis answers) and keep it current."""
        self._mirrors[mirror.topic] = mirror
        try:
            mirror.reload(full=True)
            self.ok()
        except self._errors as e:
            self.failed(e)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pdp-context-redis",
                                            daemon=True)
            self._thread.start()

    def read_hash(self, version_key: str, hash_key: str, known: tuple[str | None, int], *,
                  full: bool) -> tuple[tuple[str, int], dict[str, str]] | None:
        """A mirrored hash with its (epoch, version), read in one transaction; None when
        not ``full`` and the version is still ``known`` (nothing to read)."""
        if not full:
            version, epoch = self.client.mget(version_key, self.epoch_key)
            if (epoch, int(version or 0)) == known:
                return None
        with self.client.pipeline(transaction=True) as pipe:
            pipe.get(self.epoch_key)
            pipe.get(version_key)
            pipe.hgetall(hash_key)
            epoch, version, raw = pipe.execute()
        if epoch is None:
            epoch = self.epoch()
        return (str(epoch), int(version or 0)), dict(raw or {})

    def epoch(self) -> str:
        """This Redis's epoch, creating it if it has none (a fresh or restarted Redis)."""
        self.client.set(self.epoch_key, secrets.token_hex(4), nx=True)
        return str(self.client.get(self.epoch_key))

    def ok(self) -> None:
        if not self.reachable:
            log.info("redis %s reachable", self.source)
        self.reachable, self.error = True, None

    def failed(self, error: BaseException) -> None:
        if self.reachable or self.error is None:
            log.warning("redis %s unreachable: %s", self.source, error)
        self.reachable, self.error = False, f"{type(error).__name__}: {error}"[:300]

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)
        self.client.close()

    def _run(self) -> None:
        pubsub: Any = None
        last_sync = 0.0
        backoff = 0.05
        while not self._stop.is_set():
            try:
                if pubsub is None:
                    pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(self.channel)
                    for mirror in list(self._mirrors.values()):
                        mirror.reload(full=True)  # whatever was missed while away
                    self.ok()
                    last_sync, backoff = time.monotonic(), 0.05
                topics = set()
                message = pubsub.get_message(timeout=0.1)
                while message is not None:
                    if message.get("type") == "message":
                        topics.add(message.get("data"))
                    message = pubsub.get_message(timeout=0)
                for topic in topics:
                    if topic in self._mirrors:
                        self._mirrors[topic].reload(full=True)
                if time.monotonic() - last_sync >= self.resync_s:
                    for mirror in list(self._mirrors.values()):
                        mirror.reload(full=False)
                    last_sync = time.monotonic()
                    self.ok()
                for mirror in list(self._mirrors.values()):
                    mirror.flush()
            except self._errors as e:
                self.failed(e)
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except self._errors:
                        pass
                pubsub = None
                self._stop.wait(backoff)
                backoff = min(backoff * 2, max(self.resync_s, 0.5))
            except Exception:  # noqa: BLE001 - a bug must not stop the replica's sync
                log.exception("redis sync loop")
                self._stop.wait(0.5)
        if pubsub is not None:
            try:
                pubsub.close()
            except self._errors:
                pass


class RedisContextStore:
    """Incidents and risk levels in Redis, read from a local copy (``ContextStore``)."""

    backend = "redis"
    topic = CONTEXT_TOPIC

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self._state_key = link.key("context", "state")
        self._version_key = link.key("context", "version")
        self._lock = threading.Lock()
        self._remote = ContextState.empty("unloaded")
        self._seq: tuple[str | None, int] = (None, -1)
        self._pending: list[ContextChange] = []
        self._local = self._remote
        self._confirmed: float | None = None
        link.attach(self)

    def view(self) -> StoreView:
        confirmed = self._confirmed
        return StoreView(state=self._local, source=self.link.source,
                         age_s=time.monotonic() - confirmed if confirmed is not None else None,
                         reachable=self.link.reachable, error=self.link.error, shared=True)

    def apply(self, change: ContextChange) -> ContextState:
        try:
            self._write(change)
            self.reload(full=True)
            self.link.ok()
        except self.link.errors as e:
            self.link.failed(e)
            raise ContextUnavailable(f"the context store {self.link.source} is unreachable: "
                                     f"{e}") from e
        return self._local

    def apply_soon(self, change: ContextChange) -> None:
        with self._lock:
            self._pending.append(change)
            self._rebuild_local()

    def reload(self, *, full: bool) -> None:
        read = self.link.read_hash(self._version_key, self._state_key, self._seq, full=full)
        if read is None:
            self._confirmed = time.monotonic()
            return
        seq, raw = read
        entries = {}
        for key, text in (raw or {}).items():
            try:
                entries[key] = entry_from_json(text)
            except (ValueError, KeyError, TypeError) as e:
                log.warning("ignoring malformed context entry %s: %s", key, e)
        with self._lock:
            if seq[0] == self._seq[0] and seq[1] < self._seq[1]:
                return  # an older read finished after a newer one
            self._remote = ContextState.of(entries, f"{seq[0]}.{seq[1]}")
            self._seq = seq
            self._rebuild_local()
            self._confirmed = time.monotonic()

    def flush(self) -> None:
        while self._pending:
            change = self._pending[0]
            self._write(change)
            self.reload(full=True)
            with self._lock:
                if self._pending and self._pending[0] is change:
                    self._pending.pop(0)
                self._rebuild_local()

    def close(self) -> None:
        self.link.close()

    def _write(self, change: ContextChange) -> None:
        with self.link.client.pipeline(transaction=True) as pipe:
            pipe.set(self.link.epoch_key, secrets.token_hex(4), nx=True)
            if change.puts:
                pipe.hset(self._state_key,
                          mapping={k: entry_to_json(v) for k, v in change.puts.items()})
            if change.deletes:
                pipe.hdel(self._state_key, *change.deletes)
            pipe.incr(self._version_key)
            pipe.publish(self.link.channel, self.topic)
            pipe.execute()

    def _rebuild_local(self) -> None:
        state = self._remote
        if self._pending:
            version = f"{state.version}+local{len(self._pending)}"
            for change in self._pending:
                state = state.applied(change, version)
        self._local = state


_ADD = """
local added = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
if added == 1 then
  redis.call('INCR', KEYS[2])
  redis.call('PUBLISH', ARGV[3], ARGV[4])
  return {1, ARGV[2]}
end
return {0, redis.call('HGET', KEYS[1], ARGV[1])}
"""

_REMOVE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('INCR', KEYS[2])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return old
"""


class RedisRevocationStore:
    """Revocations shared through Redis (``context.revocations.RevocationStore``).

    ``check`` matches against a local index (no I/O per request) that pub/sub
    keeps current. ``add``/``remove`` write through and raise
    ``ContextUnavailable`` when Redis is unreachable. ``version`` is a local
    counter that moves whenever the local copy changes.
    """

    topic = REVOCATIONS_TOPIC

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self._hash_key = link.key("revocations")
        self._version_key = link.key("revocations", "version")
        self._lock = threading.Lock()
        self._entries: dict[str, RevocationEntry] = {}
        self._index = RevocationIndex(())
        self._seq: tuple[str | None, int] = (None, -1)
        self._version = 0
        self._confirmed: float | None = None
        self._add = link.client.register_script(_ADD)
        self._remove = link.client.register_script(_REMOVE)
        link.attach(self)

    @property
    def version(self) -> int:
        return self._version

    @property
    def age_s(self) -> float | None:
        """Seconds since the local copy was last confirmed with Redis (None: never)."""
        return time.monotonic() - self._confirmed if self._confirmed is not None else None

    def add(self, entry: RevocationEntry) -> tuple[RevocationEntry, bool]:
        text = json.dumps(entry.to_json(), sort_keys=True)
        added, stored = self._call(lambda: self._add(
            keys=[self._hash_key, self._version_key],
            args=[entry.id, text, self.link.channel, self.topic]))
        self._reload_quietly()
        if int(added) == 1:
            return entry, True
        return RevocationEntry.from_json(json.loads(stored)), False

    def remove(self, entry_id: str) -> RevocationEntry | None:
        old = self._call(lambda: self._remove(
            keys=[self._hash_key, self._version_key],
            args=[entry_id, self.link.channel, self.topic]))
        self._reload_quietly()
        return RevocationEntry.from_json(json.loads(old)) if old else None

    def list(self) -> list[RevocationEntry]:
        """Every entry, oldest first (from the local copy)."""
        return sorted(self._entries.values(), key=lambda e: (
            e.created_at.timestamp() if e.created_at is not None else 0.0, e.id))

    def check(self, facts: Any, now: datetime) -> RevocationEntry | None:
        return self._index.match(facts, now)

    def reload(self, *, full: bool) -> None:
        read = self.link.read_hash(self._version_key, self._hash_key, self._seq, full=full)
        if read is None:
            self._confirmed = time.monotonic()
            return
        seq, raw = read
        entries = {}
        for key, text in (raw or {}).items():
            try:
                entries[key] = RevocationEntry.from_json(json.loads(text))
            except (ValueError, KeyError, TypeError) as e:
                log.warning("ignoring malformed revocation %s: %s", key, e)
        with self._lock:
            if seq[0] == self._seq[0] and seq[1] < self._seq[1]:
                return
            changed = seq != self._seq
            self._entries, self._seq = entries, seq
            if changed:
                self._index = RevocationIndex(entries.values())
                self._version += 1
            self._confirmed = time.monotonic()

    def flush(self) -> None:
        pass

    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            self.link.client.set(self.link.epoch_key, secrets.token_hex(4), nx=True)
            result = fn()
        except self.link.errors as e:
            self.link.failed(e)
            raise ContextUnavailable(f"the revocation store {self.link.source} is unreachable: "
                                     f"{e}") from e
        self.link.ok()
        return result

    def _reload_quietly(self) -> None:
        try:
            self.reload(full=True)
        except self.link.errors as e:
            self.link.failed(e)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


__all__ = ["RedisContextStore", "RedisLink", "RedisRevocationStore"]
