"""
The channel layer of a single process (the default without REDIS_URL).

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
import secrets
import time
from collections import deque

from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer


class Channel:
    """The messages waiting on one channel, each with its expiry, and the receivers waiting."""

    __slots__ = ("messages", "receivers", "capacity")

    def __init__(self, capacity: int):
        self.messages: deque[tuple[float, dict]] = deque()
        self.receivers: deque[asyncio.Future] = deque()
        self.capacity = capacity

    def drop_expired(self, now: float) -> bool:
        """Drop the messages whose time is up; return whether there were any."""
        dropped = False
        while self.messages and self.messages[0][0] <= now:
            self.messages.popleft()
            dropped = True
        return dropped

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
            message = queue.messages.popleft()[1]
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
            receiver = queue.receivers.popleft()
            if not receiver.done():
                receiver.set_result(message)
                return
        if first:
            queue.messages.appendleft((now + self.expiry, message))
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
