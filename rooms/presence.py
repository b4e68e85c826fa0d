"""
Who is in each room's call, and who waits in its lobby.

Without Redis the entries live in this process, which is then the only one. With REDIS_URL they
live in Redis, shared by every daphne process, and each carries the time its process last vouched
for it: every connection refreshes its own entry, and entries nobody refreshed for a while (their
process died) are swept out by the others, which then report those peers as left.

An entry is a dict: id, name, role, state (the public part, see rooms.signaling) and channel,
user_id, guest_id, attendance_id, admitted (for the server only).
"""

import asyncio
import json
import time
import weakref

import redis
import redis.asyncio
from django.conf import settings

# The keys of a room expire when no process has refreshed them for this long.
KEY_LIFETIME = 120

ADMIT = """
-- KEYS: peers, lobby, seen; ARGV: id, entry, now, limit, key lifetime
local peers = redis.call('HVALS', KEYS[1])
if #peers >= tonumber(ARGV[4]) then return false end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ARGV[5]) end
return peers
"""

UPDATE = """
-- KEYS: peers; ARGV: id, entry. Only an entry still there is rewritten.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
"""

REMOVE = """
-- KEYS: peers, lobby, seen; ARGV: id. Return the entry only to the caller that removed it.
local entry = redis.call('HGET', KEYS[1], ARGV[1]) or redis.call('HGET', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return entry
"""


def public_peer(entry: dict) -> dict:
    return {key: entry[key] for key in ("id", "name", "role", "state", "instance")}


class MemoryPresence:
    """Presence for a single process: plain dicts, changed only from the event loop."""

    def __init__(self):
        self.peers: dict[str, dict[str, dict]] = {}
        self.lobbies: dict[str, dict[str, dict]] = {}
        self.seen: dict[str, dict[str, float]] = {}

    async def admit(self, slug: str, entry: dict, *, limit: int) -> list[dict] | None:
        """Add a peer unless the call is full; return the peers already there, or None."""
        peers = self.peers.setdefault(slug, {})
        if len(peers) >= limit:
            return None
        others = list(peers.values())
        entry["admitted"] = True
        peers[entry["id"]] = entry
        self.lobbies.get(slug, {}).pop(entry["id"], None)
        self.seen.setdefault(slug, {})[entry["id"]] = time.time()
        return others

    async def wait(self, slug: str, entry: dict) -> None:
        entry["admitted"] = False
        self.lobbies.setdefault(slug, {})[entry["id"]] = entry
        self.seen.setdefault(slug, {})[entry["id"]] = time.time()

    async def lobby(self, slug: str) -> list[dict]:
        return list(self.lobbies.get(slug, {}).values())

    async def update(self, slug: str, entry: dict) -> None:
        """Rewrite an admitted peer's entry (its state, its attendance), if it is still there."""
        peers = self.peers.get(slug, {})
        if entry["id"] in peers:
            peers[entry["id"]] = entry

    async def remove(self, slug: str, peer_id: str) -> dict | None:
        self.seen.get(slug, {}).pop(peer_id, None)
        entry = self.peers.get(slug, {}).pop(peer_id, None) or self.lobbies.get(slug, {}).pop(
            peer_id, None
        )
        for rooms in (self.peers, self.lobbies, self.seen):
            if slug in rooms and not rooms[slug]:
                del rooms[slug]
        return entry

    async def touch(self, slug: str, peer_id: str) -> None:
        if peer_id in self.seen.get(slug, {}):
            self.seen[slug][peer_id] = time.time()

    async def sweep(self, slug: str, *, older_than: float) -> list[dict]:
        """Remove the entries not refreshed for `older_than` seconds; return them."""
        limit = time.time() - older_than
        stale = [peer_id for peer_id, at in self.seen.get(slug, {}).items() if at < limit]
        removed = [await self.remove(slug, peer_id) for peer_id in stale]
        return [entry for entry in removed if entry is not None]

    def count(self, slug: str) -> int:
        return len(self.peers.get(slug, {}))

    def names(self, slug: str) -> list[str]:
        return sorted(entry["name"] for entry in list(self.peers.get(slug, {}).values()))


class RedisPresence:
    """Presence shared by every process through Redis, with entries that age out."""

    def __init__(self, url: str, prefix: str):
        self.url = url
        self.prefix = prefix
        # One client per event loop: a client cannot be shared between loops.
        self.clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        # For synchronous readers (Django admin): thread-safe, with its own connection pool.
        self.sync_client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    def client(self) -> redis.asyncio.Redis:
        loop = asyncio.get_running_loop()
        client = self.clients.get(loop)
        if client is None:
            client = redis.asyncio.Redis.from_url(
                self.url, decode_responses=True, socket_timeout=10, socket_connect_timeout=5
            )
            self.clients[loop] = client
        return client

    def keys(self, slug: str) -> list[str]:
        base = f"{self.prefix}:presence:{slug}"
        return [f"{base}:peers", f"{base}:lobby", f"{base}:seen"]

    async def admit(self, slug: str, entry: dict, *, limit: int) -> list[dict] | None:
        entry["admitted"] = True
        others = await self.client().eval(
            ADMIT,
            3,
            *self.keys(slug),
            entry["id"],
            json.dumps(entry),
            time.time(),
            limit,
            KEY_LIFETIME,
        )
        if others is None:
            return None
        return [json.loads(other) for other in others]

    async def wait(self, slug: str, entry: dict) -> None:
        entry["admitted"] = False
        _peers, lobby, seen = self.keys(slug)
        async with self.client().pipeline(transaction=True) as pipe:
            pipe.hset(lobby, entry["id"], json.dumps(entry))
            pipe.zadd(seen, {entry["id"]: time.time()})
            pipe.expire(lobby, KEY_LIFETIME)
            pipe.expire(seen, KEY_LIFETIME)
            await pipe.execute()

    async def lobby(self, slug: str) -> list[dict]:
        return [json.loads(value) for value in await self.client().hvals(self.keys(slug)[1])]

    async def update(self, slug: str, entry: dict) -> None:
        await self.client().eval(UPDATE, 1, self.keys(slug)[0], entry["id"], json.dumps(entry))

    async def remove(self, slug: str, peer_id: str) -> dict | None:
        value = await self.client().eval(REMOVE, 3, *self.keys(slug), peer_id)
        return json.loads(value) if value else None

    async def touch(self, slug: str, peer_id: str) -> None:
        keys = self.keys(slug)
        async with self.client().pipeline(transaction=True) as pipe:
            pipe.zadd(keys[2], {peer_id: time.time()}, xx=True)
            for key in keys:
                pipe.expire(key, KEY_LIFETIME)
            await pipe.execute()

    async def sweep(self, slug: str, *, older_than: float) -> list[dict]:
        stale = await self.client().zrangebyscore(
            self.keys(slug)[2], "-inf", f"({time.time() - older_than}"
        )
        removed = [await self.remove(slug, peer_id) for peer_id in stale]
        return [entry for entry in removed if entry is not None]

    def count(self, slug: str) -> int:
        return self.sync_client.hlen(self.keys(slug)[0])

    def names(self, slug: str) -> list[str]:
        values = self.sync_client.hvals(self.keys(slug)[0])
        return sorted(json.loads(value)["name"] for value in values)


_memory = MemoryPresence()
_redis: dict[tuple[str, str], RedisPresence] = {}


def get_presence() -> MemoryPresence | RedisPresence:
    """Return the presence store the settings call for: Redis when REDIS_URL is set."""
    if not settings.REDIS_URL:
        return _memory
    key = (settings.REDIS_URL, settings.REDIS_PREFIX)
    if key not in _redis:
        _redis[key] = RedisPresence(*key)
    return _redis[key]
