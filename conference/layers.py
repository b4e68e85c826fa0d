"""
Channel layers: InProcessChannelLayer for a single process (the default without REDIS_URL), and
RedisChannelLayer, which adds Redis between processes (the default with it).

Channels' own InMemoryChannelLayer is made for tests: every receive walks every channel and group
of the process, every send deep-copies its message and every group send starts a task per member,
so the cost of one signal grows with the connections in the process. This layer keeps its
semantics (capacity and ChannelFull, message expiry, group expiry, groups that skip full channels)
at a cost that does not grow with the process:

- A channel is a queue with its waiting receivers: a send hands the message straight to a waiting
  receiver, or queues it; both are O(1). A group send is O(members of the group).
- Messages are handed over, not copied, as asyncio.Queue does: a sender must not change a message
  after sending it, and receivers must not change what they receive (the room consumer builds a
  new dict for every event and copies what it keeps).
- Expired messages are dropped when their channel is next used, and a sweep of all channels and
  groups runs at most once per expiry period, on the next receive or group send after it is due;
  a channel whose message expired unread leaves its groups, as in InMemoryChannelLayer.
- A receiver that is cancelled (its consumer ended) takes its channel's queue with it, as
  channels-redis' pub/sub layer does: messages for a consumer that is gone are not kept.
"""

import asyncio
import contextlib
import logging
import secrets
import time
import weakref

import msgpack
import redis.asyncio
import redis.exceptions
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

logger = logging.getLogger(__name__)


class Channel:
    """
    The messages waiting on one channel, each with its expiry, and the receivers waiting.

    Lists, not deques: a channel nearly always holds no message and one receiver, and an empty
    deque takes 600 bytes where an empty list takes 56, for every connection of the process.
    """

    __slots__ = ("messages", "receivers", "capacity")

    def __init__(self, capacity: int):
        self.messages: list[tuple[float, dict]] = []
        self.receivers: list[asyncio.Future] = []
        self.capacity = capacity

    def drop_expired(self, now: float) -> bool:
        """Drop the messages whose time is up; return whether there were any."""
        expired = 0
        while expired < len(self.messages) and self.messages[expired][0] <= now:
            expired += 1
        del self.messages[:expired]
        return expired > 0

    @property
    def idle(self) -> bool:
        return not self.messages and not self.receivers


class InProcessChannelLayer(BaseChannelLayer):
    extensions = ["groups", "flush"]

    def __init__(
        self, expiry=60, group_expiry=86400, capacity=100, channel_capacity=None, **kwargs
    ):
        super().__init__(
            expiry=expiry, capacity=capacity, channel_capacity=channel_capacity, **kwargs
        )
        self.channel_capacity = self.compile_capacities(self.channel_capacity)
        self.group_expiry = group_expiry
        self.channels: dict[str, Channel] = {}
        self.groups: dict[str, dict[str, float]] = {}  # group -> channel -> when it joined
        self.swept_at = time.monotonic()

    # --- Channels --------------------------------------------------------------------------------

    async def send(self, channel: str, message: dict) -> None:
        """Hand a message to the channel's receiver, or queue it; raise ChannelFull when full."""
        if not isinstance(message, dict):
            raise TypeError("message is not a dict")
        self.require_valid_channel_name(channel)
        now = time.monotonic()
        queue = self.channel(channel)
        queue.drop_expired(now)
        if not queue.receivers and len(queue.messages) >= queue.capacity:
            raise ChannelFull(channel)
        self.hand_over(queue, message, now)

    async def receive(self, channel: str) -> dict:
        """Return the channel's next message, waiting for one if need be."""
        self.require_valid_channel_name(channel)
        now = time.monotonic()
        self.sweep_if_due(now)
        queue = self.channel(channel)
        queue.drop_expired(now)
        if queue.messages:
            message = queue.messages.pop(0)[1]
            if queue.idle and self.channels.get(channel) is queue:
                del self.channels[channel]
            return message
        receiver = asyncio.get_running_loop().create_future()
        queue.receivers.append(receiver)
        try:
            return await receiver
        except asyncio.CancelledError:
            if receiver in queue.receivers:
                queue.receivers.remove(receiver)
            if receiver.done() and not receiver.cancelled():
                # Handed over just as its receiver went: the next receiver gets it instead.
                self.hand_over(queue, receiver.result(), time.monotonic(), first=True)
            if queue.idle and self.channels.get(channel) is queue:
                del self.channels[channel]
            raise

    def hand_over(self, queue: Channel, message: dict, now: float, *, first=False) -> None:
        """Give a message to the first receiver still waiting, or queue it (`first` in line)."""
        while queue.receivers:
            receiver = queue.receivers.pop(0)
            if not receiver.done():
                receiver.set_result(message)
                return
        if first:
            queue.messages.insert(0, (now + self.expiry, message))
        else:
            queue.messages.append((now + self.expiry, message))

    async def new_channel(self, prefix: str = "specific.") -> str:
        """Return a new name for a channel of this process."""
        return f"{prefix}.inprocess!{secrets.token_hex(12)}"

    def channel(self, name: str) -> Channel:
        queue = self.channels.get(name)
        if queue is None:
            queue = self.channels[name] = Channel(self.get_capacity(name))
        return queue

    # --- Groups ----------------------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self.groups.setdefault(group, {})[channel] = time.monotonic()

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_channel_name(channel)
        self.require_valid_group_name(group)
        members = self.groups.get(group)
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self.groups[group]

    async def group_send(self, group: str, message: dict) -> None:
        """Send a message to every channel of a group, skipping the ones that are full."""
        if not isinstance(message, dict):
            raise TypeError("message is not a dict")
        self.require_valid_group_name(group)
        self.sweep_if_due(time.monotonic())
        for channel in list(self.groups.get(group, ())):
            with contextlib.suppress(ChannelFull):
                await self.send(channel, message)

    # --- Expiry ----------------------------------------------------------------------------------

    def sweep_if_due(self, now: float) -> None:
        """Drop expired messages, idle channels and old group memberships, once per expiry."""
        if now - self.swept_at < self.expiry:
            return
        self.swept_at = now
        unread = set()
        for name, queue in list(self.channels.items()):
            if queue.drop_expired(now):
                unread.add(name)
            if queue.idle:
                del self.channels[name]
        joined_before = now - self.group_expiry
        for group, members in list(self.groups.items()):
            for channel, joined_at in list(members.items()):
                if channel in unread or joined_at < joined_before:
                    del members[channel]
            if not members:
                del self.groups[group]

    # --- Flush -----------------------------------------------------------------------------------

    async def flush(self) -> None:
        self.channels = {}
        self.groups = {}

    async def close(self) -> None:
        pass


class RedisChannelLayer(InProcessChannelLayer):
    """
    The channel layer of several processes sharing a Redis (the default with REDIS_URL).

    Each process delivers to its own channels as InProcessChannelLayer does, without Redis, and
    reaches the others through Redis pub/sub: one Redis channel per process (its inbox) for
    messages to its channels, one per group for the processes that have members in it. A channel
    name carries its process (`...!<process>.<token>`), so a send goes straight to the right
    place. A process reads everything with one subscriber connection and one blocking read, and
    publishes without a lock; messages from one sender reach each receiver in the order sent.

    channels-redis' RedisPubSubChannelLayer, measured first (bench/), holds a lock across each
    publish's round trip, reads with a polling loop, and relays a process's own messages through
    Redis: 138-450 ms at the 99th percentile for 1,000 signals/s over 1,000 sockets, where this
    layer keeps within a few milliseconds. What Redis loses in a restart is restored here as there:
    the subscriber subscribes again when its connection comes back, and group memberships live in
    the process.

    A message for another process's channel whose queue is full, or that no longer exists, is
    dropped there (a sender cannot be told across processes); within a process ChannelFull is
    raised, as always.
    """

    def __init__(self, hosts=None, prefix="asgi", **kwargs):
        super().__init__(**kwargs)
        host = (hosts or ["redis://localhost:6379/0"])[0]
        if isinstance(host, str):
            host = {"address": host}
        self.address = host["address"]
        self.options = {key: value for key, value in host.items() if key != "address"}
        self.prefix = prefix
        self.process = secrets.token_hex(6)
        self.links: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    # --- Names -----------------------------------------------------------------------------------

    async def new_channel(self, prefix: str = "specific.") -> str:
        await self.link()
        return f"{prefix}.redis!{self.process}.{secrets.token_hex(8)}"

    def owner(self, channel: str) -> str:
        """Return the process a channel belongs to; a channel without one is this process's."""
        _name, bang, local = channel.partition("!")
        return local.partition(".")[0] if bang and local else self.process

    def inbox(self, process: str) -> str:
        return f"{self.prefix}:inbox:{process}"

    def group_channel(self, group: str) -> str:
        return f"{self.prefix}:group:{group}"

    # --- Channels and groups ---------------------------------------------------------------------

    async def send(self, channel: str, message: dict) -> None:
        owner = self.owner(channel)
        if owner == self.process:
            await super().send(channel, message)
            return
        self.require_valid_channel_name(channel)
        link = await self.link()
        await link.client.publish(self.inbox(owner), self.pack(channel, message))

    async def group_add(self, group: str, channel: str) -> None:
        await super().group_add(group, channel)
        link = await self.link()
        if group not in link.groups:
            link.groups.add(group)
            await link.pubsub.subscribe(self.group_channel(group))

    async def group_discard(self, group: str, channel: str) -> None:
        await super().group_discard(group, channel)
        link = self.links.get(asyncio.get_running_loop())
        if link is not None and group not in self.groups and group in link.groups:
            link.groups.discard(group)
            await link.pubsub.unsubscribe(self.group_channel(group))

    async def group_send(self, group: str, message: dict) -> None:
        await super().group_send(group, message)  # this process's members, directly
        link = await self.link()
        await link.client.publish(self.group_channel(group), self.pack(None, message))

    async def flush(self) -> None:
        await super().flush()
        for link in list(self.links.values()):
            await link.close()
        self.links = weakref.WeakKeyDictionary()

    async def close(self) -> None:
        await self.flush()

    # --- Redis -----------------------------------------------------------------------------------

    def pack(self, channel: str | None, message: dict) -> bytes:
        return msgpack.packb([self.process, channel, message], use_bin_type=True)

    async def link(self) -> "Link":
        """Return this event loop's connections to Redis, made (and subscribed) on first use."""
        loop = asyncio.get_running_loop()
        link = self.links.get(loop)
        if link is None:
            link = self.links[loop] = Link(self)
        await link.ready()
        return link

    def deliver(self, raw: bytes, redis_channel: str) -> None:
        """Hand a message read from Redis to this process's channel, or its group's members."""
        origin, channel, message = msgpack.unpackb(raw, raw=False)
        if origin == self.process:
            return  # this process's own group message, delivered directly already
        if channel is None:
            group = redis_channel.removeprefix(self.group_channel(""))
            targets = list(self.groups.get(group, ()))
        else:
            targets = [channel] if channel in self.channels else []  # else it has gone
        now = time.monotonic()
        for target in targets:
            queue = self.channel(target)
            queue.drop_expired(now)
            if queue.receivers or len(queue.messages) < queue.capacity:
                self.hand_over(queue, message, now)


class Link:
    """One event loop's connections to Redis: a client to publish, a subscriber to read."""

    def __init__(self, layer: RedisChannelLayer):
        self.layer = layer
        self.client = redis.asyncio.Redis.from_url(layer.address, **layer.options)
        self.pubsub = self.client.pubsub()
        self.groups: set[str] = set()
        self.reader: asyncio.Task | None = None
        self.subscribed: asyncio.Future | None = None

    async def ready(self) -> None:
        if self.subscribed is None:
            self.subscribed = asyncio.ensure_future(
                self.pubsub.subscribe(self.layer.inbox(self.layer.process))
            )
        await asyncio.shield(self.subscribed)
        if self.reader is None:
            self.reader = asyncio.ensure_future(self.read())

    async def read(self) -> None:
        """Read and deliver every message, with one blocking read at a time, for ever."""
        while True:
            try:
                message = await self.pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=None
                )
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                # Redis restarts: the next read connects again and subscribes to everything again.
                await asyncio.sleep(0.5)
                continue
            if message is not None and message["type"] == "message":
                channel = message["channel"]
                if isinstance(channel, bytes):
                    channel = channel.decode()
                try:
                    self.layer.deliver(message["data"], channel)
                except Exception:
                    # A message this process cannot read must not stop it reading the rest.
                    logger.exception("could not deliver a message from Redis channel %s", channel)

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
        await self.pubsub.aclose()
        await self.client.aclose()
