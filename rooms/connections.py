"""
The room connections this process holds, and the one timer that looks after all of them.

Every few seconds (a sixth of SIGNALING_PRESENCE_TTL) the timer closes the connections nothing was
heard from, vouches for the presence entries of the others (which restores any that a restarted
Redis lost), sweeps out the entries of dead processes and reports them, and retries departures that
Redis could not take when they happened. One timer per process, not one task per socket.

Departures are reported here, in one place, whoever notices them: a connection leaving, a newer
connection of the same page, or a sweep.
"""

import asyncio
import contextlib
import logging
import time
import weakref
from dataclasses import dataclass

import redis.exceptions
from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from django.conf import settings

from rooms import live, services, signaling
from rooms.presence import get_presence

logger = logging.getLogger(__name__)

# What Redis does while it restarts or is out of reach: the call waits for it, a while.
OUTAGE_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
# Once Redis answers again, every process needs a moment to subscribe to its channels again (the
# channel layer's receiver retries each second); a message published before that reaches nobody.
RESUBSCRIBE_SECONDS = 2.0


class ServiceUnavailable(Exception):
    """Redis stayed out of reach for longer than SIGNALING_OUTAGE_GRACE seconds."""


async def retrying(operation, *args, **kwargs):
    """
    Await a call to Redis (the channel layer or presence), again while Redis is out of reach.

    A short outage (a restart) then costs a pause, not a connection; one that lasts longer than
    SIGNALING_OUTAGE_GRACE seconds raises ServiceUnavailable. After a failure the call is made
    again only once Redis answers and every process had time to subscribe again, so that what
    it publishes reaches its receivers.
    """
    try:
        return await operation(*args, **kwargs)  # nearly always: nothing else on the hot path
    except OUTAGE_ERRORS as error:
        failure = error
    deadline = time.monotonic() + settings.SIGNALING_OUTAGE_GRACE
    delay = 0.1
    while time.monotonic() + delay <= deadline:
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)
        try:
            await get_presence().ping()
            await asyncio.sleep(RESUBSCRIBE_SECONDS)
            return await operation(*args, **kwargs)
        except OUTAGE_ERRORS as error:
            failure = error
    raise ServiceUnavailable from failure


@dataclass
class Departure:
    """
    A peer to report gone: taken out of presence unless someone took it out for us (`removed`),
    then announced to its room (`announced`). `tell` names the event for a connection that may
    still be alive behind an entry someone else took out: "peer.replaced" or "peer.swept".
    """

    slug: str
    entry: dict
    reason: str = signaling.LOST
    removed: bool = False
    announced: bool = False
    tell: str = ""


def announcement(entry: dict, reason: str) -> dict:
    """Return the event that tells a room a peer (in the call or in its lobby) is gone."""
    if entry["admitted"]:
        return {"type": "peer.left", "id": entry["id"], "reason": reason}
    return {"type": "lobby.left", "id": entry["id"]}


async def end_attendance(entry: dict) -> None:
    if entry["admitted"]:  # those in a lobby have no attendance
        await connections().attendance.leave(entry["id"])


class AttendanceBook:
    """
    The attendance rows of one event loop's connections, written as a group commit: what comes
    while one write is under way goes into the next, so a storm of joins costs a few commits
    rather than one each.
    """

    def __init__(self):
        self.joins: list[tuple[dict, asyncio.Future]] = []
        self.leaves: list[tuple[int, asyncio.Future]] = []
        self.writer: asyncio.Task | None = None

    async def join(self, **row) -> None:
        """Record someone joining (see services.attendance_record); return once it is written."""
        await self.wait(self.joins, row)

    async def leave(self, peer_id: str) -> None:
        """End a peer's attendance, whichever process recorded it."""
        await self.wait(self.leaves, peer_id)

    async def wait(self, queue: list, item):
        done = asyncio.get_running_loop().create_future()
        queue.append((item, done))
        if self.writer is None or self.writer.done():
            self.writer = asyncio.get_running_loop().create_task(self.write())
        return await done

    async def write(self) -> None:
        while self.joins or self.leaves:
            joins, self.joins = self.joins, []
            leaves, self.leaves = self.leaves, []
            try:
                await database_sync_to_async(services.attendance_record)(
                    joins=[row for row, _ in joins], leaves=[peer for peer, _ in leaves]
                )
            except Exception as error:
                for _, done in joins + leaves:
                    if not done.done():
                        done.set_exception(error)
                continue
            for _, done in joins + leaves:
                if not done.done():
                    done.set_result(None)


class Connections:
    """The connections of one event loop (a daphne process has one), and their timer."""

    def __init__(self):
        self.consumers: dict[str, object] = {}  # by peer id
        self.attendance = AttendanceBook()
        self.pending: list[Departure] = []  # what Redis could not take yet
        self.timer: asyncio.Task | None = None
        self.outage_since: float | None = None

    def add(self, consumer) -> None:
        self.consumers[consumer.peer_id] = consumer
        self.keep_time()

    def forget(self, consumer) -> None:
        self.consumers.pop(consumer.peer_id, None)

    def keep_time(self) -> None:
        if self.timer is None or self.timer.done():
            self.timer = asyncio.get_running_loop().create_task(self.run())

    async def depart(self, slug: str, entry: dict, reason: str) -> None:
        """Take a connection's own peer out of presence and report it."""
        await self.report([Departure(slug, entry, reason)])

    async def report_gone(self, slug: str, entries: list[dict], *, newcomer: str = "") -> None:
        """
        Report entries just taken out of presence for someone else: the older connections of a
        page that connected again (the `newcomer` instance), or the peers of a process that
        stopped vouching for them. A connection still alive behind one is told to go: the older
        one of a page for good, any other to connect again.
        """
        for entry in entries:
            replaced = entry["instance"] == newcomer
            logger.info(
                "peer %s in room %s: %s",
                entry["id"],
                slug,
                "replaced by a newer connection of its page" if replaced else "not vouched for",
            )
        await self.report(
            [
                Departure(
                    slug,
                    entry,
                    removed=True,
                    tell="peer.replaced" if entry["instance"] == newcomer else "peer.swept",
                )
                for entry in entries
            ]
        )

    async def report(self, departures: list[Departure]) -> None:
        """End their attendance, then report them: now, or (by the timer) once Redis is back."""
        for departure in departures:
            await end_attendance(departure.entry)
        for index, departure in enumerate(departures):
            try:
                await self.complete(departure)
            except OUTAGE_ERRORS:
                self.pending += departures[index:]
                self.keep_time()
                return

    async def complete(self, departure: Departure) -> None:
        """Carry a departure through the steps it has not made yet; each is made once."""
        layer = get_channel_layer()
        if not departure.removed:
            if not await get_presence().remove(departure.slug, departure.entry["id"]):
                return  # someone else took it out, and reported it
            departure.removed = True
        if not departure.announced:
            event = announcement(departure.entry, departure.reason)
            await layer.group_send(live.room_group(departure.slug), event)
            departure.announced = True
        if departure.tell:
            # A connection whose queue is full is that far behind: it is going anyway.
            with contextlib.suppress(ChannelFull):
                await layer.send(departure.entry["channel"], {"type": departure.tell})

    async def run(self) -> None:
        interval = settings.SIGNALING_PRESENCE_TTL / 6
        while self.consumers or self.pending:
            await asyncio.sleep(interval)
            try:
                await self.tick()
            except Exception:
                # A bug here must not stop the timer of every connection in the process.
                logger.exception("the connection timer failed")

    async def tick(self) -> None:
        ttl = settings.SIGNALING_PRESENCE_TTL
        silent_since = time.monotonic() - (ttl - ttl / 6)
        for consumer in list(self.consumers.values()):
            if consumer.last_heard < silent_since:
                self.forget(consumer)
                await consumer.time_out()
        rooms: dict[str, list[dict]] = {}
        for consumer in self.consumers.values():
            rooms.setdefault(consumer.slug, []).append(consumer.entry)
        presence = get_presence()
        try:
            for slug, entries in rooms.items():
                await self.report_gone(slug, await presence.refresh(slug, entries))
            while self.pending:  # only this timer works through them, one at a time
                await self.complete(self.pending[0])
                self.pending.pop(0)
        except OUTAGE_ERRORS as error:
            if self.outage_since is None:
                self.outage_since = time.monotonic()
                logger.warning("Redis is out of reach (%s); the calls wait for it", error)
            return
        if self.outage_since is not None:
            logger.warning(
                "Redis is back after %.0f s; presence restored",
                time.monotonic() - self.outage_since,
            )
            self.outage_since = None


_by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def connections() -> Connections:
    """Return the connections of the running event loop."""
    loop = asyncio.get_running_loop()
    found = _by_loop.get(loop)
    if found is None:
        found = _by_loop[loop] = Connections()
    return found
