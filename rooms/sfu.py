"""
Calls through the media server: where each call goes, and each person's media in it.

A call in "sfu" mode has a record in presence, the same for every daphne process: the Janus server
it is on and a generation, which grows each time the call moves (its server died or restarted).
Each connection in such a call has a `Participant`: a Janus session of its own on that server, with
a VideoRoom publisher handle per feed (camera, screen) and one subscriber handle that receives
everyone else's feeds. The browser never talks to Janus's API: the consumer relays its offers,
answers and candidates (docs/signaling.md, protocol 2), and Django's decisions (kick, mute, end)
are carried out in Janus too, with the room's secret, which no browser sees.

What a person receives follows the room in Janus: the camera handle, joined as a publisher, hears
of every feed that starts or stops, and the subscription is brought to match, one renegotiation
at a time (the browser answers each offer before the next is made).
"""

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import weakref
import zlib

from django.conf import settings

from rooms import signaling
from rooms.janus import Janus, JanusError

logger = logging.getLogger(__name__)

VIDEOROOM = "janus.plugin.videoroom"
# Janus's VideoRoom error codes that mean "already so".
ROOM_EXISTS = 427
NO_SUCH_ROOM = 426
NO_SUCH_FEED = 428
# How long a server that could not be reached is passed over when placing calls.
DOWN_SECONDS = 10
# How long the subscription waits for the browser's answer before offering again.
ANSWER_TIMEOUT = 15


def room_number(room_id: int) -> int:
    """Return the VideoRoom room of a site room: its primary key."""
    return room_id


def room_secret(room_id: int) -> str:
    """Return the secret a call's VideoRoom room is made with; only the site knows it."""
    key = hashlib.sha256(f"janus-room:{settings.SECRET_KEY}".encode()).digest()
    return hmac.new(key, str(room_id).encode(), hashlib.sha256).hexdigest()[:32]


def display(peer_id: str, feed: str) -> str:
    """Return what the VideoRoom shows of a feed: who publishes it, and which of their feeds."""
    return json.dumps({"peer": peer_id, "feed": feed})


def feed_of(publisher: dict) -> tuple[str, str] | None:
    """Return the (peer id, feed) of a VideoRoom publisher this site made, or None."""
    try:
        shown = json.loads(publisher.get("display") or publisher.get("feed_display") or "")
        return shown["peer"], shown["feed"]
    except (ValueError, TypeError, KeyError):
        return None


class MediaServers:
    """This process's connections to the Janus servers, one each, made when first needed."""

    def __init__(self):
        self.connections: dict[str, Janus] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.down_until: dict[str, float] = {}

    async def get(self, url: str) -> Janus:
        """Return a live connection to this server; raise ConnectionError when it is unreachable."""
        lock = self.locks.setdefault(url, asyncio.Lock())
        async with lock:
            janus = self.connections.get(url)
            if janus is not None and not janus.reader.done():
                return janus
            try:
                janus = await Janus.connect(url, secret=settings.JANUS_API_SECRET)
            except OSError as error:
                self.down_until[url] = time.monotonic() + DOWN_SECONDS
                raise ConnectionError(f"Janus at {url} is out of reach: {error}") from error
            self.connections[url] = janus
            self.down_until.pop(url, None)
            return janus

    def place(self, slug: str, *, avoiding: str = "") -> str:
        """
        Choose the server for a call: the first by rendezvous hash of the room among the servers
        not known to be down (and not `avoiding`), so that every process chooses alike.
        """
        now = time.monotonic()
        ranked = sorted(
            settings.JANUS_URLS,
            key=lambda url: zlib.crc32(f"{slug}@{url}".encode()),
            reverse=True,
        )
        up = [url for url in ranked if self.down_until.get(url, 0) <= now and url != avoiding]
        return (up or ranked)[0]

    def mark_down(self, url: str) -> None:
        self.down_until[url] = time.monotonic() + DOWN_SECONDS


# One set per event loop: a connection cannot be shared between loops (the tests run many).
_servers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def media_servers() -> MediaServers:
    """Return this process's connections to the media servers."""
    loop = asyncio.get_running_loop()
    if loop not in _servers:
        _servers[loop] = MediaServers()
    return _servers[loop]


async def ensure_room(handle, room_id: int) -> None:
    """Make the call's VideoRoom room on this server, unless it is there already."""
    try:
        await handle.message(
            {
                "request": "create",
                "room": room_number(room_id),
                "secret": room_secret(room_id),
                "is_private": True,
                # Cameras and screen shares are publishers each.
                "publishers": settings.SFU_MAX_PARTICIPANTS * 2,
                "audiocodec": "opus",
                "videocodec": "vp8",
                "audiolevel_event": True,
                "notify_joining": False,
            }
        )
    except JanusError as error:
        if error.code != ROOM_EXISTS:
            raise


class Participant:
    """
    One connection's media through the media server. `tell` sends a message to its browser;
    `lost` is called (once) when the media server is lost.
    """

    def __init__(self, *, server: str, room_id: int, peer_id: str, tell, lost):
        self.server = server
        self.room_id = room_id
        self.peer_id = peer_id
        self.tell = tell
        self.lost = lost
        self.session = None
        self.publishers: dict[str, object] = {}  # feed -> handle
        self.publisher_ids: dict[str, int] = {}  # feed -> Janus participant id
        self.own_streams: dict[str, list[dict]] = {}  # feed -> its streams, as Janus has them
        self.subscriber = None
        self.feeds: dict[int, dict] = {}  # Janus publisher id -> {peer, feed, streams}
        self.subscribed: set[int] = set()
        self.streams: list[dict] = []  # the subscription's active streams, as the page got them
        self.changed = asyncio.Event()
        self.answer: asyncio.Future | None = None  # the browser's answer to our last offer
        self.tasks: set[asyncio.Task] = set()
        self.closed = False

    # --- Start and end ---------------------------------------------------------------------

    async def start(self) -> None:
        """Open a session, make sure the room exists, and join it as the camera's publisher."""
        janus = await media_servers().get(self.server)
        self.session = await janus.session()
        camera = await self.session.attach(VIDEOROOM)
        await ensure_room(camera, self.room_id)
        joined = await self.join(camera, "camera")
        self.heard_of(joined.get("publishers", []))
        self.run(self.follow_room(camera))
        self.run(self.keep_subscription())

    async def join(self, handle, feed: str) -> dict:
        """Join the room with a handle, as the publisher of one of this person's feeds."""
        joined = await handle.message(
            {
                "request": "join",
                "ptype": "publisher",
                "room": room_number(self.room_id),
                "display": display(self.peer_id, feed),
            },
            answered_later=True,
        )
        self.publishers[feed] = handle
        self.publisher_ids[feed] = joined["id"]
        return joined

    async def close(self) -> None:
        """End the session: Janus takes this person's feeds out of everyone's subscription."""
        self.closed = True
        for task in self.tasks:
            task.cancel()
        if self.session is not None:
            with contextlib.suppress(ConnectionError, JanusError, TimeoutError):
                await self.session.destroy()

    def run(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        task.add_done_callback(self.failed)

    def failed(self, task: asyncio.Task) -> None:
        if task.cancelled() or self.closed:
            return
        error = task.exception()
        if isinstance(error, (ConnectionError, TimeoutError)):
            self.closed = True
            self.lost()
        elif error is not None:
            logger.error("media task of %s failed", self.peer_id, exc_info=error)

    # --- What the browser sends ------------------------------------------------------------

    async def publish(self, feed: str, offer: dict) -> dict:
        """Publish (or renegotiate) a feed; return the media server's answer."""
        handle = self.publishers.get(feed)
        if handle is None:  # a screen share: a publisher of its own
            handle = await self.session.attach(VIDEOROOM)
            await self.join(handle, feed)
        reply = await handle.message({"request": "configure"}, jsep=offer, answered_later=True)
        self.own_streams[feed] = reply.get("streams", [])
        return {"type": reply["jsep"]["type"], "sdp": reply["jsep"]["sdp"]}

    async def unpublish(self, feed: str) -> None:
        handle = self.publishers.get(feed)
        if handle is None:
            return
        if feed == "camera":
            with contextlib.suppress(JanusError):
                await handle.message({"request": "unpublish"}, answered_later=True)
        else:
            del self.publishers[feed]
            self.publisher_ids.pop(feed, None)
            await handle.detach()

    async def trickle(self, target: str, candidate: dict | None) -> None:
        handle = (
            self.subscriber if target == signaling.SUBSCRIPTION else self.publishers.get(target)
        )
        if handle is not None:
            await handle.trickle(candidate)

    async def answered(self, description: dict) -> None:
        """The browser's answer to the subscription's last offer."""
        if self.subscriber is None or self.answer is None or self.answer.done():
            return
        try:
            await self.subscriber.message(
                {"request": "start"}, jsep=description, answered_later=True
            )
        finally:
            if not self.answer.done():
                self.answer.set_result(None)

    async def receive(self, streams: list[dict]) -> None:
        """Pause, resume or pick the simulcast layer of streams of the subscription."""
        known = {stream["mid"] for stream in self.streams}
        configured = []
        for stream in streams:
            if stream["mid"] not in known:
                continue
            item = {"mid": stream["mid"]}
            if "send" in stream:
                item["send"] = stream["send"]
            if "layer" in stream:
                item["substream"] = stream["layer"]
            configured.append(item)
        if configured and self.subscriber is not None:
            await self.subscriber.message(
                {"request": "configure", "streams": configured}, answered_later=True
            )

    # --- Host actions, carried out in the media server --------------------------------------

    async def participants(self) -> list[dict]:
        listed = await self.publishers["camera"].message(
            {"request": "listparticipants", "room": room_number(self.room_id)}
        )
        return listed.get("participants", [])

    async def kick(self, peer_id: str) -> None:
        """Take every feed of a person out of the room at once, whatever their page does."""
        for participant in await self.participants():
            found = feed_of(participant)
            if found is not None and found[0] == peer_id:
                with contextlib.suppress(JanusError):
                    await self.publishers["camera"].message(
                        {
                            "request": "kick",
                            "room": room_number(self.room_id),
                            "secret": room_secret(self.room_id),
                            "id": participant["id"],
                        }
                    )

    async def mute(self, peer_id: str, *, muted: bool = True) -> None:
        """Stop (or let again) a person's microphone reaching anyone, in the media server."""
        for janus_id, feed in list(self.feeds.items()):
            if feed["peer"] != peer_id:
                continue
            for stream in feed["streams"]:
                if stream.get("type") == "audio":
                    await self.moderate(janus_id, stream["mid"], muted)

    async def unmute_self(self) -> None:
        """Lift a host's mute of this person's own microphone (they unmuted it themselves)."""
        for stream in self.own_streams.get("camera", []):
            if stream.get("type") == "audio":
                await self.moderate(self.publisher_ids["camera"], stream["mid"], False)

    async def moderate(self, janus_id: int, mid: str, muted: bool) -> None:
        with contextlib.suppress(JanusError):
            await self.publishers["camera"].message(
                {
                    "request": "moderate",
                    "room": room_number(self.room_id),
                    "secret": room_secret(self.room_id),
                    "id": janus_id,
                    "mid": mid,
                    "mute": muted,
                }
            )

    async def destroy_room(self) -> None:
        """End the call in the media server: every session leaves the room."""
        with contextlib.suppress(JanusError):
            await self.publishers["camera"].message(
                {
                    "request": "destroy",
                    "room": room_number(self.room_id),
                    "secret": room_secret(self.room_id),
                }
            )

    # --- Following the room ---------------------------------------------------------------

    def heard_of(self, publishers: list[dict]) -> None:
        for publisher in publishers:
            found = feed_of(publisher)
            if found is None:
                continue
            peer, feed = found
            self.feeds[publisher["id"]] = {
                "peer": peer,
                "feed": feed,
                "streams": publisher.get("streams", []),
            }
            # Our own feeds are published, not received; a moderated one's streams change too.
        self.changed.set()

    def gone(self, janus_id) -> None:
        if self.feeds.pop(janus_id, None) is not None:
            self.changed.set()

    async def follow_room(self, camera) -> None:
        """Read the camera handle's events: feeds that start and stop, and the handle's end."""
        while True:
            event = await camera.events.get()
            if event.get("janus") == "detached" and event.get("reason") == "connection lost":
                raise ConnectionError("the connection to the media server was lost")
            data = event.get("plugindata", {}).get("data", {})
            if "publishers" in data:
                self.heard_of(data["publishers"])
            for key in ("unpublished", "leaving", "kicked"):
                if isinstance(data.get(key), int):
                    self.gone(data[key])
            if data.get("videoroom") == "destroyed":
                return

    def wanted(self) -> set[int]:
        return {janus_id for janus_id, feed in self.feeds.items() if feed["peer"] != self.peer_id}

    async def keep_subscription(self) -> None:
        """Bring the subscription to what the room publishes, one offer and answer at a time."""
        while True:
            await self.changed.wait()
            self.changed.clear()
            if self.answer is not None and not self.answer.done():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(ANSWER_TIMEOUT):
                        await asyncio.shield(self.answer)
            wanted = self.wanted()
            adding = sorted(wanted - self.subscribed)
            if self.subscriber is None:
                # The first offer carries one feed and a renegotiation brings the rest: aiortc
                # 1.16 decodes only one video of a first offer that carries several.
                adding = adding[:1]
            dropping = sorted(self.subscribed - wanted)
            if not adding and not dropping:
                continue
            try:
                reply = await self.subscribe(adding, dropping)
            except JanusError as error:
                if error.code == NO_SUCH_FEED:  # one left meanwhile: keep those still there
                    publishing = {p["id"] for p in await self.participants() if p.get("publisher")}
                    for janus_id in set(adding) - publishing:
                        self.feeds.pop(janus_id, None)
                else:
                    logger.warning("subscription of %s refused: %s", self.peer_id, error)
                    await asyncio.sleep(1)
                self.changed.set()
                continue
            self.subscribed = (self.subscribed | set(adding)) - set(dropping)
            if wanted != self.subscribed:
                self.changed.set()
            if "jsep" in reply:
                await self.offer(reply)

    async def subscribe(self, adding: list[int], dropping: list[int]) -> dict:
        if self.subscriber is None:
            self.subscriber = await self.session.attach(VIDEOROOM)
            self.run(self.follow_subscription(self.subscriber))
            return await self.subscriber.message(
                {
                    "request": "join",
                    "ptype": "subscriber",
                    "room": room_number(self.room_id),
                    "streams": [{"feed": janus_id} for janus_id in adding],
                },
                answered_later=True,
            )
        request = {"request": "update"}
        if adding:
            request["subscribe"] = [{"feed": janus_id} for janus_id in adding]
        if dropping:
            request["unsubscribe"] = [{"feed": janus_id} for janus_id in dropping]
        return await self.subscriber.message(request, answered_later=True)

    async def follow_subscription(self, subscriber) -> None:
        """Relay the offers Janus makes on its own (a feed left the room) to the browser."""
        while True:
            event = await subscriber.events.get()
            if event.get("janus") == "detached" and event.get("reason") == "connection lost":
                raise ConnectionError("the connection to the media server was lost")
            if "jsep" in event:
                data = dict(event.get("plugindata", {}).get("data", {}))
                data["jsep"] = event["jsep"]
                await self.offer(data)

    async def offer(self, reply: dict) -> None:
        """Send the browser an offer of the subscription, naming what each media line carries."""
        streams = []
        for stream in reply.get("streams", []):
            found = feed_of(stream)
            if stream.get("active", True) and found is not None and "feed_id" in stream:
                peer, feed = found
                streams.append(
                    {"mid": stream["mid"], "peer": peer, "feed": feed, "kind": stream["type"]}
                )
        if "streams" in reply:
            self.streams = streams
        self.answer = asyncio.get_running_loop().create_future()
        await self.tell(signaling.subscription(reply["jsep"], self.streams))
