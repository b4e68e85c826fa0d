"""
Who is in each room's call, and who waits in its lobby.

Without Redis the entries live in this process, which is then the only one. With REDIS_URL they
live in Redis, shared by every daphne process, and each carries the time its process last vouched
for it: every process refreshes the entries of its own connections (rooms.connections), and entries
nobody refreshed for a while (their process died) are swept out by the others, which then report
those peers as lost.

An entry is a dict: id, name, role, state, instance (the public part, see rooms.signaling) and
channel, user_id, guest_id, browser, admitted (for the server only).

Every change that takes a peer out is atomic and made once: a peer is removed by its own
connection leaving, by a newer connection of the same page (same instance) taking its place, or by
a sweep; whichever removes it reports it, and only that one. In Redis a removed id leaves a
tombstone for a while, so that a refresh already on its way cannot bring it back, while an entry
Redis lost in a restart (no tombstone) is restored by the next refresh of its process.
"""

import asyncio
import json
import time
import weakref
from dataclasses import dataclass, field

import redis
import redis.asyncio
from django.conf import settings

# The keys of a room expire when no process has refreshed them for this long; tombstones too.
KEY_LIFETIME = 120
KEY_COUNT = 5

# The Lua scripts share their keys: KEYS = peers, lobby, seen, gone, media (see
# RedisPresence.keys); each script keeps all of them alive.

ADMIT = """
-- ARGV: id, entry, now, limit, lifetime, instance, returning only ('1' or '0'), stale before.
-- Admit a peer. The other connections of its page (same instance) and the entries nobody has
-- refreshed since ARGV[8] (a dead process's) leave as it comes in, and do not count against the
-- limit. With ARGV[7] = '1', admit only a page that was in the call already. Return false, or
-- {the peers already in, the entries that left}.
local stale = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[8])) do
  stale[id] = true
end
local others, leaving, returning = {}, {}, false
for position, key in ipairs({KEYS[1], KEYS[2]}) do
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields, 2 do
    local id, value = fields[i], fields[i + 1]
    if id ~= ARGV[1] then
      local same_page = cjson.decode(value)['instance'] == ARGV[6]
      if same_page and position == 1 then returning = true end
      if same_page or stale[id] then
        table.insert(leaving, {key, id, value})
      elseif position == 1 then
        table.insert(others, value)
      end
    end
  end
end
if ARGV[7] == '1' and not returning then return false end
if #others >= tonumber(ARGV[4]) then return false end
local left = {}
for _, item in ipairs(leaving) do
  redis.call('HDEL', item[1], item[2])
  redis.call('ZREM', KEYS[3], item[2])
  redis.call('ZADD', KEYS[4], ARGV[3], item[2])
  table.insert(left, item[3])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ARGV[5]) end
return {others, left}
"""

WAIT = """
-- ARGV: id, entry, now, lifetime, instance. Put a peer in the lobby; the older lobby connections
-- of its page leave. Return the entries that left.
local left = {}
local fields = redis.call('HGETALL', KEYS[2])
for i = 1, #fields, 2 do
  local id, value = fields[i], fields[i + 1]
  if id ~= ARGV[1] and cjson.decode(value)['instance'] == ARGV[5] then
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
    redis.call('ZADD', KEYS[4], ARGV[3], id)
    table.insert(left, value)
  end
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ARGV[4]) end
return left
"""

UPDATE = """
-- ARGV: id, entry. Only an entry still in the call is rewritten.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
"""

REMOVE = """
-- ARGV: id, now. Return 1 when this call takes the peer out: it was there, or it vanished with
-- no tombstone (Redis restarted and lost it, so nobody reported it); 0 when someone else took it
-- out already.
local there = redis.call('HDEL', KEYS[1], ARGV[1]) + redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local buried = redis.call('ZSCORE', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[5]) end
if there > 0 or not buried then return 1 end
return 0
"""

REFRESH = """
-- ARGV: now, lifetime, stale before, then (id, admitted '1' or '0', entry) for each connection
-- this process holds in the room. Vouch for those entries, restoring any that Redis lost (but
-- none that was removed on purpose), and remove the entries nobody vouched for since ARGV[3].
-- Return the removed entries.
for i = 4, #ARGV, 3 do
  local id = ARGV[i]
  if not redis.call('ZSCORE', KEYS[4], id) then
    if redis.call('HEXISTS', KEYS[1], id) == 0 and redis.call('HEXISTS', KEYS[2], id) == 0 then
      local key = KEYS[2]
      if ARGV[i + 1] == '1' then key = KEYS[1] end
      redis.call('HSET', key, id, ARGV[i + 2])
    end
    redis.call('ZADD', KEYS[3], ARGV[1], id)
  end
end
local swept = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[3])) do
  local value = redis.call('HGET', KEYS[1], id) or redis.call('HGET', KEYS[2], id)
  redis.call('HDEL', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZADD', KEYS[4], ARGV[1], id)
  if value then table.insert(swept, value) end
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. (ARGV[1] - ARGV[2]))
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[5]) end
for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ARGV[2]) end
return swept
"""

SET_MEDIA = """
-- ARGV: record, the generation it replaces ('' for none), lifetime. Set the call's media record
-- unless another is in force (with a generation: unless the one in force is another one), and
-- not for a call nobody is in. Return the record in force, or false when the call is empty.
local current = redis.call('GET', KEYS[5])
if current and (ARGV[2] == '' or cjson.decode(current)['generation'] ~= tonumber(ARGV[2])) then
  return current
end
if redis.call('HLEN', KEYS[1]) == 0 then return false end
redis.call('SET', KEYS[5], ARGV[1], 'EX', ARGV[3])
return ARGV[1]
"""


@dataclass
class Admission:
    """A place in the call: the peers already there, and the entries that left as it came in."""

    others: list[dict]
    departed: list[dict] = field(default_factory=list)


def public_peer(entry: dict) -> dict:
    return {key: entry[key] for key in ("id", "name", "role", "state", "instance")}


class MemoryPresence:
    """Presence for a single process: plain dicts, changed only from the event loop."""

    def __init__(self):
        self.peers: dict[str, dict[str, dict]] = {}
        self.lobbies: dict[str, dict[str, dict]] = {}
        self.seen: dict[str, dict[str, float]] = {}
        self.media_records: dict[str, dict] = {}

    async def admit(
        self, slug: str, entry: dict, *, limit: int, returning_only: bool = False
    ) -> Admission | None:
        """Add a peer unless the call is full; return its Admission, or None."""
        peers, seen = self.peers.get(slug, {}), self.seen.get(slug, {})
        stale_before = time.time() - stale_after()
        returning = False
        leaving, others = [], []
        for other in (*peers.values(), *self.lobbies.get(slug, {}).values()):
            if other["id"] == entry["id"]:
                continue
            same_page = other["instance"] == entry["instance"]
            returning |= same_page and other["admitted"]
            if same_page or seen.get(other["id"], 0) < stale_before:
                leaving.append(other)
            elif other["admitted"]:
                others.append(other)
        if (returning_only and not returning) or len(others) >= limit:
            return None
        for other in leaving:
            self.drop(slug, other["id"])
        entry["admitted"] = True
        self.lobbies.get(slug, {}).pop(entry["id"], None)
        self.peers.setdefault(slug, {})[entry["id"]] = entry
        self.seen.setdefault(slug, {})[entry["id"]] = time.time()
        return Admission(others=others, departed=leaving)

    async def wait(self, slug: str, entry: dict) -> list[dict]:
        """Put a peer in the lobby; return the older lobby connections of its page, now gone."""
        same_page = [
            other
            for other in self.lobbies.get(slug, {}).values()
            if other["id"] != entry["id"] and other["instance"] == entry["instance"]
        ]
        for other in same_page:
            self.drop(slug, other["id"])
        entry["admitted"] = False
        self.lobbies.setdefault(slug, {})[entry["id"]] = entry
        self.seen.setdefault(slug, {})[entry["id"]] = time.time()
        return same_page

    async def ping(self) -> None:
        """Return once the store answers (at once: it is this process)."""

    async def lobby(self, slug: str) -> list[dict]:
        return list(self.lobbies.get(slug, {}).values())

    async def update(self, slug: str, entry: dict) -> None:
        """Rewrite an admitted peer's entry (its state, role), if it is still there."""
        peers = self.peers.get(slug, {})
        if entry["id"] in peers:
            peers[entry["id"]] = entry

    async def remove(self, slug: str, peer_id: str) -> bool:
        """Take a peer out; return whether this call did (rather than someone before it)."""
        return self.drop(slug, peer_id) is not None

    async def refresh(self, slug: str, entries: list[dict]) -> list[dict]:
        """Vouch for this process's entries; remove and return those nobody vouched for."""
        now = time.time()
        seen = self.seen.get(slug, {})
        for entry in entries:
            if entry["id"] in seen:
                seen[entry["id"]] = now
        stale_before = now - stale_after()
        stale = [peer_id for peer_id, at in seen.items() if at < stale_before]
        swept = [self.drop(slug, peer_id) for peer_id in stale]
        return [entry for entry in swept if entry is not None]

    def drop(self, slug: str, peer_id: str) -> dict | None:
        self.seen.get(slug, {}).pop(peer_id, None)
        entry = self.peers.get(slug, {}).pop(peer_id, None) or self.lobbies.get(slug, {}).pop(
            peer_id, None
        )
        self.forget_empty(slug)
        return entry

    def forget_empty(self, slug: str) -> None:
        for rooms in (self.peers, self.lobbies, self.seen):
            if slug in rooms and not rooms[slug]:
                del rooms[slug]
        if slug not in self.peers:
            self.media_records.pop(slug, None)

    async def media(self, slug: str) -> dict | None:
        """Return how the call's media travel: None (a mesh), or the media server's record."""
        return self.media_records.get(slug)

    async def set_media(self, slug: str, record: dict, *, replacing: int | None = None):
        """
        Set the call's media record unless another is in force (with `replacing`, unless the one
        in force is of another generation). Return the record in force; None when nobody is in
        the call.
        """
        current = self.media_records.get(slug)
        if current is not None and (replacing is None or current["generation"] != replacing):
            return current
        if not self.peers.get(slug):
            return None
        self.media_records[slug] = record
        return record

    def media_now(self, slug: str) -> dict | None:
        return self.media_records.get(slug)

    def entry_now(self, slug: str, peer_id: str) -> dict | None:
        """Return the entry of a peer in the call (not the lobby), for synchronous readers."""
        return self.peers.get(slug, {}).get(peer_id)

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
        return [f"{base}:{name}" for name in ("peers", "lobby", "seen", "gone", "media")]

    async def admit(
        self, slug: str, entry: dict, *, limit: int, returning_only: bool = False
    ) -> Admission | None:
        entry["admitted"] = True
        now = time.time()
        result = await self.client().eval(
            ADMIT,
            KEY_COUNT,
            *self.keys(slug),
            entry["id"],
            json.dumps(entry),
            now,
            limit,
            KEY_LIFETIME,
            entry["instance"],
            "1" if returning_only else "0",
            now - stale_after(),
        )
        if result is None:
            return None
        others, departed = result
        return Admission(
            others=[json.loads(other) for other in others],
            departed=[json.loads(value) for value in departed],
        )

    async def wait(self, slug: str, entry: dict) -> list[dict]:
        entry["admitted"] = False
        departed = await self.client().eval(
            WAIT,
            KEY_COUNT,
            *self.keys(slug),
            entry["id"],
            json.dumps(entry),
            time.time(),
            KEY_LIFETIME,
            entry["instance"],
        )
        return [json.loads(value) for value in departed]

    async def ping(self) -> None:
        """Return once Redis answers; raise ConnectionError while it does not."""
        await self.client().ping()

    async def lobby(self, slug: str) -> list[dict]:
        return [json.loads(value) for value in await self.client().hvals(self.keys(slug)[1])]

    async def update(self, slug: str, entry: dict) -> None:
        await self.client().eval(
            UPDATE, KEY_COUNT, *self.keys(slug), entry["id"], json.dumps(entry)
        )

    async def remove(self, slug: str, peer_id: str) -> bool:
        return bool(
            await self.client().eval(REMOVE, KEY_COUNT, *self.keys(slug), peer_id, time.time())
        )

    async def refresh(self, slug: str, entries: list[dict]) -> list[dict]:
        now = time.time()
        vouched = []
        for entry in entries:
            vouched += [entry["id"], "1" if entry["admitted"] else "0", json.dumps(entry)]
        swept = await self.client().eval(
            REFRESH, KEY_COUNT, *self.keys(slug), now, KEY_LIFETIME, now - stale_after(), *vouched
        )
        return [json.loads(value) for value in swept]

    async def media(self, slug: str) -> dict | None:
        value = await self.client().get(self.keys(slug)[4])
        return json.loads(value) if value else None

    async def set_media(self, slug: str, record: dict, *, replacing: int | None = None):
        value = await self.client().eval(
            SET_MEDIA,
            KEY_COUNT,
            *self.keys(slug),
            json.dumps(record),
            "" if replacing is None else replacing,
            KEY_LIFETIME,
        )
        return json.loads(value) if value else None

    def media_now(self, slug: str) -> dict | None:
        value = self.sync_client.get(self.keys(slug)[4])
        return json.loads(value) if value else None

    def entry_now(self, slug: str, peer_id: str) -> dict | None:
        value = self.sync_client.hget(self.keys(slug)[0], peer_id)
        return json.loads(value) if value else None

    def count(self, slug: str) -> int:
        return self.sync_client.hlen(self.keys(slug)[0])

    def names(self, slug: str) -> list[str]:
        values = self.sync_client.hvals(self.keys(slug)[0])
        return sorted(json.loads(value)["name"] for value in values)


def stale_after() -> float:
    """Return after how many seconds without a refresh an entry counts as its process's dead."""
    return settings.SIGNALING_PRESENCE_TTL / 2


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
