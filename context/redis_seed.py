"""Redis as fan-out and cache of the durable admin state (``context.durable``).

:class:`RedisSeeder` writes a durable snapshot into Redis's ``revocations`` and
``context`` hashes whenever Redis does not hold it (a fresh or restarted,
empty Redis; a change made while Redis was down), and publishes ``admin`` so
every replica reloads from the durable store. :class:`DurableMirror` is what
the Redis link's thread drives: on a message, on every resync and on every
reconnect it reloads the durable copy and reseeds Redis if needed.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from context.admin_store import AdminSnapshot

if TYPE_CHECKING:
    from context.durable import DurableState
    from context.redis_backend import RedisLink

ADMIN_TOPIC = "admin"


class DurableMirror:
    """What the Redis link's thread drives: reload from the durable store, reseed Redis."""

    topic = ADMIN_TOPIC

    def __init__(self, state: DurableState, seeder: RedisSeeder) -> None:
        self.state, self.seeder = state, seeder

    def reload(self, *, full: bool) -> None:
        if full:  # a message or a reconnect; the state's own poll confirms it otherwise
            self.state.refresh_quietly(full=True)
        if self.seeder.behind(self.state.snapshot):  # Redis errors: the link reconnects
            self.seeder.seed(self.state.snapshot)

    def flush(self) -> None:
        pass


# KEYS: this store's seeded marker, the rows it owns in Redis, revocations hash, its
# version, context hash, its version, Redis epoch. ARGV: durable version, channel, epoch
# token, n, n revocation pairs, m, m context pairs. Rows this store does not own (another
# store's, automatic risk raises) are left alone; rows it owned and no longer has go.
_SEED = """
if tonumber(redis.call('GET', KEYS[1]) or '-1') >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[7], ARGV[3], 'NX')
for _, owned in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local hash = string.sub(owned, 1, 1) == 'r' and KEYS[3] or KEYS[5]
  redis.call('HDEL', hash, string.sub(owned, 3))
end
redis.call('DEL', KEYS[2])
local i = 5
for _ = 1, tonumber(ARGV[4]) do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]); redis.call('SADD', KEYS[2], 'r:' .. ARGV[i])
  i = i + 2
end
local m = tonumber(ARGV[i]); i = i + 1
for _ = 1, m do
  redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 1]); redis.call('SADD', KEYS[2], 'c:' .. ARGV[i])
  i = i + 2
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('INCR', KEYS[4])
redis.call('INCR', KEYS[6])
redis.call('PUBLISH', ARGV[2], 'revocations')
redis.call('PUBLISH', ARGV[2], 'context')
return 1
"""


class RedisSeeder:
    """Writes a durable snapshot into Redis's hashes (the cache) when Redis lacks it.

    Each durable store (named by its epoch) owns the rows it seeded: a new seed
    replaces exactly those, so replicas that share one PostgreSQL agree, and
    replicas with a SQLite log each (sharing only Redis) add to one another.
    """

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self._script = link.client.register_script(_SEED)

    def behind(self, snap: AdminSnapshot) -> bool:
        """Does Redis hold an older snapshot of this store, or none (a restarted Redis)?"""
        seen = self.link.client.get(self._marker(snap))
        return seen is None or int(seen) < snap.version

    def seed(self, snap: AdminSnapshot) -> bool:
        """Put ``snap``'s rows into Redis unless it holds them (or newer) already."""
        revocations = [x for kv in snap.rows("revocations").items() for x in kv]
        context = [x for kv in snap.rows("context").items() for x in kv]
        keys = [self._marker(snap), self.link.key("admin", "owned", snap.epoch),
                self.link.key("revocations"), self.link.key("revocations", "version"),
                self.link.key("context", "state"), self.link.key("context", "version"),
                self.link.epoch_key]
        args: list[str | int] = [snap.version, self.link.channel, secrets.token_hex(4),
                len(revocations) // 2, *revocations, len(context) // 2, *context]
        return bool(self._script(keys=keys, args=args))

    def publish(self) -> None:
        self.link.client.publish(self.link.channel, ADMIN_TOPIC)

    def _marker(self, snap: AdminSnapshot) -> str:
        return self.link.key("admin", "seeded", snap.epoch)


__all__ = ["ADMIN_TOPIC", "DurableMirror", "RedisSeeder"]
