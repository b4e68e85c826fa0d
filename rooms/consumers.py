"""
The signaling consumer: one websocket per person in a room's call (see docs/signaling.md).

It asks the access rule at connect and keeps the answer until access to the room changes (a live
notice makes it ask again); messages are parsed by rooms.signaling and relayed without touching the
database. Descriptions and candidates go to one peer's own channel; only room-wide notices go to
the room's group.

One way out: however a connection ends (the client closes it or drops, the server closes it, a
handler raises, the task is cancelled), `__call__` runs `leave()` once, which forgets the
connection in this process, takes its peer out of presence, tells the room and ends its
attendance. Sends never raise into the code that makes them: once a close went out, or the socket
is gone, they are dropped.
"""

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import parse_qs

from autobahn.exception import Disconnected
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull, StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from conference.websocket import session_of, user_of
from rooms import live, selectors, services, sfu, signaling, turn
from rooms.connections import OUTAGE_ERRORS, ServiceUnavailable, connections, retrying
from rooms.models import Guest, Role, Room
from rooms.presence import Admission, get_presence, public_peer

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Arrival:
    """What the access rule said of a connection, and what the connection keeps of it."""

    decision: selectors.JoinDecision
    room_id: int | None = None
    room_name: str = ""
    room_limit: int = 0
    locked: bool = False
    ended: bool = False
    user_id: int | None = None
    guest_id: str | None = None
    browser: str = ""
    # The occurrence the person joins, for their attendance and a kick's ban.
    meeting_id: int | None = None
    occurrence_starts_at: dt.datetime | None = None
    occurrence_ends_at: dt.datetime | None = None
    # From how many people the call goes through the media server (0: never).
    sfu_from: int = 0

    @property
    def person(self) -> str:
        return f"user:{self.user_id}" if self.user_id else f"guest:{self.guest_id}"


# Connects only read the database, in threads of their own rather than Channels' one database
# thread: connections that arrive together wait for the database side by side, not one after
# another. A few threads are enough for that, each with its database connection.
ARRIVALS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="arrivals")


@functools.partial(database_sync_to_async, thread_sensitive=False, executor=ARRIVALS)
def arrive(slug: str, scope) -> Arrival:
    """
    Decide on a new connection in one trip to the database: its session, its user, the room, the
    guest and the access rule. The connection keeps ids and values, not model instances.
    """
    session = session_of(scope)
    user = user_of(session)
    browser = selectors.browser_of(session)
    now = timezone.now()
    room = Room.objects.filter(slug=slug).first()
    guest = None
    if room is not None and not user.is_authenticated:
        guest = selectors.guest_for_session(session, room)
    decision = selectors.join_decision(room, user=user, guest=guest, browser=browser, at=now)
    if not decision.allowed:
        return Arrival(decision=decision)
    occurrence = decision.occurrence
    return Arrival(
        decision=dataclasses.replace(decision, occurrence=None),
        room_id=room.pk,
        room_name=room.name,
        room_limit=room.participant_limit(),
        sfu_from=sfu_threshold(room),
        locked=room.locked,
        ended=room.ended_at is not None,
        user_id=user.pk if user.is_authenticated else None,
        guest_id=str(guest.pk) if guest is not None else None,
        browser=browser,
        meeting_id=occurrence.meeting.pk if occurrence else None,
        occurrence_starts_at=occurrence.starts_at if occurrence else None,
        occurrence_ends_at=occurrence.ends_at if occurrence else None,
    )


def sfu_threshold(room: Room) -> int:
    """Return from how many people a room's call goes through the media server (0: never)."""
    if not room.may_use_sfu():
        return 0
    return 1 if room.media == Room.Media.SFU else settings.SFU_FROM_PARTICIPANTS


@database_sync_to_async
def standing_now(arrival: Arrival):
    """Ask the access rule again, for a person already in the call."""
    room = Room.objects.filter(pk=arrival.room_id).first()
    user = User.objects.filter(pk=arrival.user_id).first() if arrival.user_id else None
    guest = Guest.objects.filter(pk=arrival.guest_id).first() if arrival.guest_id else None
    if user is None and guest is None:
        return selectors.refuse(selectors.NOT_ALLOWED, _("You may not join this call."))
    return selectors.standing(room, user=user, guest=guest, browser=arrival.browser)


@database_sync_to_async
def reopen(room_id: int) -> None:
    services.call_reopen(room=Room.objects.get(pk=room_id))


@database_sync_to_async
def kick(arrival: Arrival, peer: dict) -> None:
    """Ban the person behind a peer entry, as the host whose connection this is."""
    services.ban_create(
        room=Room.objects.get(pk=arrival.room_id),
        user=User.objects.filter(pk=peer.get("user_id")).first() if peer.get("user_id") else None,
        guest=(
            Guest.objects.select_related("invitation").filter(pk=peer.get("guest_id")).first()
            if peer.get("guest_id")
            else None
        ),
        browser=peer.get("browser", ""),
        expires_at=arrival.occurrence_ends_at,
        created_by=User.objects.filter(pk=arrival.user_id).first() if arrival.user_id else None,
    )


@database_sync_to_async
def set_locked(room_id: int, locked: bool) -> None:
    services.room_set_locked(room=Room.objects.get(pk=room_id), locked=locked)


@database_sync_to_async
def end_call(room_id: int, ended_by: str) -> None:
    services.call_end(room=Room.objects.get(pk=room_id), ended_by=ended_by)


class RoomConsumer(AsyncWebsocketConsumer):
    # --- Connection ---------------------------------------------------------------------------

    async def __call__(self, scope, receive, send):
        self.closed = False  # a close went out, or the socket is gone: nothing more is sent
        self.registered = False  # the peer is in presence (in the call or its lobby)
        self.has_left = False
        self.attendance = None
        self.close_code = None
        self.leave_reason = None  # set when the server ends this connection for a reason
        try:
            await super().__call__(scope, receive, self.unless_closed(send))
        finally:
            await self.leave()

    def unless_closed(self, send):
        """Wrap the server's send so that nothing is sent after a close, and nothing raises."""

        async def send_unless_closed(message):
            if self.closed:
                return
            if message["type"] == "websocket.close":
                self.closed = True
            try:
                await send(message)
            except Disconnected:  # daphne is closing the socket: the client is gone
                self.closed = True

        return send_unless_closed

    async def connect(self):
        self.slug = self.scope["url_route"]["kwargs"]["slug"]
        self.peer_id = signaling.new_peer_id()
        self.presence = get_presence()
        self.group = live.room_group(self.slug)
        self.admitted = False
        self.waiting = False
        self.peers: dict[str, dict] = {}  # the other peers in the call, by id
        self.lobby: dict[str, dict] = {}  # people waiting, known to hosts only
        self.limiter = signaling.RateLimiter(
            settings.SIGNALING_RATE_PER_SECOND, settings.SIGNALING_RATE_BURST
        )
        self.last_heard = time.monotonic()
        self.media = None  # the call's media server record while it is in sfu mode
        self.participant = None  # this connection's media in it
        self.media_ready = None  # the participant's start
        self.mover = None  # the task that moves the call off a lost media server
        # Accept first: a close before accepting reaches the client as a bare HTTP 403.
        await self.accept()

        self.arrival = await arrive(self.slug, self.scope)
        decision = self.arrival.decision
        if not decision.allowed:
            extra = {"opensAt": decision.opens_at.isoformat()} if decision.opens_at else {}
            await self.close_with(decision.code, message=decision.message, **extra)
        self.role = decision.role
        self.locked = self.arrival.locked
        self.attendance = None  # the task that records it, once in the call
        query = parse_qs(self.scope.get("query_string", b"").decode("latin1"))
        page = query.get("instance", [""])[0]
        self.protocol = 2 if query.get("protocol", [""])[0] == "2" else 1
        self.entry = {
            "id": self.peer_id,
            "instance": signaling.peer_instance(self.arrival.person, page),
            "name": decision.name,
            "role": self.role,
            "state": signaling.default_state(),
            "channel": self.channel_name,
            "user_id": self.arrival.user_id,
            "guest_id": self.arrival.guest_id,
            "browser": self.arrival.browser,
            "admitted": False,
        }
        await retrying(self.channel_layer.group_add, self.group, self.channel_name)
        if decision.lobby:
            # A page that was in the call and connects again does not wait a second time.
            admission = await retrying(
                self.presence.admit,
                self.slug,
                self.entry,
                limit=self.room_limit,
                returning_only=True,
            )
            if admission is None:
                await self.wait_in_lobby()
                return
        else:
            admission = await retrying(
                self.presence.admit, self.slug, self.entry, limit=self.room_limit
            )
            if admission is None:
                await self.close_with(signaling.ROOM_FULL)
        await self.enter(admission)

    @property
    def room_limit(self) -> int:
        return self.arrival.room_limit

    async def wait_in_lobby(self):
        self.waiting = True
        departed = await retrying(self.presence.wait, self.slug, self.entry)
        self.register()
        await connections().report_gone(self.slug, departed, newcomer=self.entry["instance"])
        await self.send_json(signaling.lobby())
        await retrying(
            self.channel_layer.group_send, self.group, {"type": "lobby.knock", "peer": self.entry}
        )

    async def enter(self, admission: Admission):
        """Join the call proper: take the place, welcome this peer, tell the others."""
        was_waiting, self.waiting, self.admitted = self.waiting, False, True
        self.register()
        if self.is_host and self.arrival.ended:
            await reopen(self.arrival.room_id)  # a host joining an ended call starts it again
        # Copies: the layer hands events over uncopied, and in-process presence holds the other
        # connections' own entries; what this connection keeps, it changes on its own.
        self.peers = {other["id"]: dict(other) for other in admission.others}
        await connections().report_gone(
            self.slug, admission.departed, newcomer=self.entry["instance"]
        )
        media = await self.decide_media(len(admission.others) + 1)
        if self.protocol < 2 and (media is not None or self.arrival.sfu_from == 1):
            self.leave_reason = signaling.LEFT
            await self.close_with(signaling.PROTOCOL_UNSUPPORTED)
        # The others hear of the newcomer before it hears of them: were it the other way round, a
        # page that reconnects at once could have its older connection's peer-left overtaken by
        # that connection's own, late, peer-joined.
        await self.tell_room({"type": "peer.joined", "peer": self.entry})
        await self.send_json(
            signaling.welcome(
                self_peer=self.entry,
                peers=self.peers.values(),
                ice_servers=turn.ice_servers(peer_id=self.peer_id),
                room={"slug": self.slug, "name": self.arrival.room_name, "locked": self.locked},
                protocol=self.protocol,
                media_mode=signaling.MESH if media is None else signaling.SFU,
            )
        )
        if media is not None:
            await self.use_media(media, announce=False)
        if self.is_host:
            await self.tell_of_lobby()
        if was_waiting:
            await self.tell_room({"type": "lobby.left", "id": self.peer_id})
        # The database's part comes after the welcome, on its own: neither the join nor the first
        # offers wait for it, and leave() waits for it to end what it started.
        self.attendance = asyncio.ensure_future(self.record_attendance())

    async def record_attendance(self):
        try:
            await connections().attendance.join(
                room_id=self.arrival.room_id,
                peer=self.peer_id,
                name=self.entry["name"],
                role=self.role,
                user_id=self.arrival.user_id,
                guest_id=self.arrival.guest_id,
                meeting_id=self.arrival.meeting_id,
                occurrence_starts_at=self.arrival.occurrence_starts_at,
            )
        except Exception:
            logger.exception("could not record attendance of %s in %s", self.peer_id, self.slug)
        self.attendance = None  # done: a thousand idle connections need not keep a thousand tasks

    # --- The media server ---------------------------------------------------------------------

    async def decide_media(self, count: int) -> dict | None:
        """
        Return the call's media server record (None: the call is a mesh), moving the call to the
        media server when this newcomer brings it to the room's threshold. Once there, a call
        stays until everyone has left: it does not flap as people come and go.
        """
        media = await retrying(self.presence.media, self.slug)
        # A protocol 1 client cannot take part there: it never moves a call to the media server.
        threshold = self.arrival.sfu_from if self.protocol >= 2 else 0
        if media is not None or not threshold or count < threshold:
            return media
        server = sfu.media_servers().place(self.slug)
        record = {"mode": signaling.SFU, "server": server, "generation": 1}
        media = await retrying(self.presence.set_media, self.slug, record)
        if media == record and count > 1:  # this connection moved a call already under way
            await self.tell_room({"type": "media.moved", "media": media})
        return media

    async def use_media(self, media: dict, *, announce: bool) -> None:
        """Take part in the call on this media server: open a session there, tell the page."""
        await self.drop_media()
        self.media = media
        self.participant = sfu.Participant(
            server=media["server"],
            room_id=self.arrival.room_id,
            peer_id=self.peer_id,
            tell=self.send_json,
            lost=self.media_lost,
        )
        self.media_ready = asyncio.ensure_future(self.participant.start())
        self.media_ready.add_done_callback(self.media_started)
        if announce:
            await self.send_json(signaling.media_mode(signaling.SFU))

    def media_started(self, start: asyncio.Future) -> None:
        if self.has_left:
            return
        error = start.exception()
        if error is not None:
            logger.warning("media of %s in %s could not start: %s", self.peer_id, self.slug, error)
            if isinstance(error, ConnectionError | TimeoutError | sfu.JanusError):
                self.media_lost()

    async def drop_media(self) -> None:
        participant, self.participant = getattr(self, "participant", None), None
        if participant is not None:
            # Not cancelled: a start cut short could leave a session in Janus that nobody ends.
            await asyncio.wait([self.media_ready])
            await participant.close()

    def media_lost(self) -> None:
        """The media server went away: move the call to one that answers (once per process)."""
        if self.mover is None and not self.has_left:
            self.mover = asyncio.ensure_future(self.move_media(self.media))

    async def move_media(self, lost: dict) -> None:
        """Find a media server that answers, and move the call there unless another did."""
        servers = sfu.media_servers()
        servers.mark_down(lost["server"])
        try:
            for attempt in range(120):
                server = servers.place(self.slug, avoiding=lost["server"] if attempt < 3 else "")
                try:
                    await servers.get(server)
                    break
                except ConnectionError:
                    await asyncio.sleep(1)
            else:
                logger.error("no media server answers for the call in %s", self.slug)
                return
            record = {"mode": signaling.SFU, "server": server, "generation": lost["generation"] + 1}
            media = await retrying(
                self.presence.set_media, self.slug, record, replacing=lost["generation"]
            )
            if media is not None:
                await self.tell_room({"type": "media.moved", "media": media})
        finally:
            self.mover = None

    async def media_moved(self, event):
        """The call moved to the media server, or to another one: publish there anew."""
        media = event["media"]
        if not self.admitted or (self.media and self.media["generation"] >= media["generation"]):
            return
        if self.protocol < 2:
            self.leave_reason = signaling.LEFT
            await self.close_with(signaling.PROTOCOL_UNSUPPORTED)
        await self.use_media(media, announce=True)

    async def media_call(self, operation: str, *args):
        """Run an operation of this connection's media; tell the page when it fails."""
        participant, ready = self.participant, self.media_ready
        if participant is None:
            await self.send_error(
                signaling.WRONG_MODE, _("This call is peer-to-peer: use signal messages.")
            )
            return None
        await asyncio.wait([ready])
        try:
            ready.result()
            return await getattr(participant, operation)(*args)
        except (sfu.JanusError, ConnectionError, TimeoutError) as error:
            await self.send_error(
                signaling.MEDIA_UNAVAILABLE,
                _("The media server could not do that (%(reason)s); try again shortly.")
                % {"reason": error},
            )
            return None

    def register(self):
        """The peer is in presence: from now on this process's timer vouches for it."""
        self.registered = True
        connections().add(self)

    async def tell_of_lobby(self):
        for waiting in await retrying(self.presence.lobby, self.slug):
            self.lobby[waiting["id"]] = waiting
            await self.send_json(signaling.knock(peer=waiting))

    async def close_with(self, code: str, *, message: str | None = None, **extra):
        """Send the error for a closing reason, close with its code, and stop this consumer."""
        if message is None:
            error = signaling.closing_error(code, **extra)
        else:
            error = signaling.error_message(code, message, **extra)
        await self.send_json(error)
        await self.close(signaling.CLOSE_CODES[code])
        raise StopConsumer

    async def time_out(self):
        """
        Close a connection nothing was heard from (this process's timer calls it), and leave at
        once: the consumer itself only stops when the server has finished closing the socket.
        """
        self.leave_reason = signaling.LOST
        await self.send_json(signaling.closing_error(signaling.TIMED_OUT))
        await self.close(signaling.CLOSE_CODES[signaling.TIMED_OUT])
        await self.leave()

    async def disconnect(self, code):
        self.close_code = code

    async def leave(self):
        """The one way out: forget this connection, report its peer gone, end its attendance."""
        if self.has_left:
            return
        self.has_left = True
        registry = connections()
        registry.forget(self)
        if getattr(self, "mover", None) is not None:
            self.mover.cancel()
        await self.drop_media()
        if self.attendance is not None:
            await self.attendance  # it may still be writing the row that departing ends
        if self.registered:
            reason = self.leave_reason or (
                signaling.LEFT if self.close_code in (1000, 1001) else signaling.LOST
            )
            try:
                await registry.depart(self.slug, self.entry, reason)
            except Exception:
                logger.exception("could not report peer %s leaving %s", self.peer_id, self.slug)
        if hasattr(self, "group"):
            # In an outage the layer forgets this channel's subscriptions with it.
            with contextlib.suppress(*OUTAGE_ERRORS):
                await self.channel_layer.group_discard(self.group, self.channel_name)

    async def dispatch(self, message):
        """
        Call the message's handler, as Channels does, but without closing old database
        connections first: Channels does that for every message, a thread hop each, while this
        consumer touches the database only through database_sync_to_async, which closes them.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        try:
            await handler(message)
        except ServiceUnavailable:
            logger.warning("closing a connection in room %s: Redis stayed out of reach", self.slug)
            self.leave_reason = signaling.LOST
            await self.close_with(signaling.UNAVAILABLE)

    @property
    def is_host(self) -> bool:
        return self.role in (Role.HOST, Role.COHOST)

    # --- Messages from the client -------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if self.closed or not self.registered:
            return
        self.last_heard = time.monotonic()
        if not self.limiter.allow(self.last_heard):
            await self.close_with(signaling.RATE_LIMITED)
        if text_data is None:
            await self.send_error(
                signaling.BINARY_NOT_SUPPORTED, _("Send messages as JSON text, not binary.")
            )
            return
        try:
            message = signaling.parse_client_message(text_data)
        except signaling.ProtocolError as error:
            await self.send_error(error.code, error.message)
            return
        if message.type == signaling.PING:
            await self.send_json(signaling.pong())
        elif not self.admitted:
            await self.send_error(
                signaling.NOT_ADMITTED, _("Wait until a host lets you in from the lobby.")
            )
        elif message.type in signaling.HOST_ACTIONS and not self.is_host:
            await self.send_error(signaling.HOST_ONLY, _("Only hosts and co-hosts can do that."))
        else:
            await self.HANDLERS[message.type](self, **message.fields)

    async def on_signal(self, *, to: str, data: dict):
        peer = self.peers.get(to)
        if peer is None or self.media is not None:
            return  # gone already, never here, or no mesh to negotiate: dropped, as documented
        event = {
            "type": "signal.relay",
            "room": self.slug,
            "sender": self.peer_id,
            "sender_channel": self.channel_name,
            "data": data,
        }
        if not await self.send_to(peer["channel"], event):
            await self.send_error(
                signaling.PEER_BUSY,
                _("The peer %(id)s is not keeping up; the signal was not delivered.") % {"id": to},
            )

    async def on_state(self, *, state: dict):
        if self.participant is not None and state["audio"] and not self.entry["state"]["audio"]:
            await self.media_call("unmute_self")  # a host's mute ends when they unmute
        self.entry["state"] = state
        await retrying(self.presence.update, self.slug, self.entry)
        await self.tell_room({"type": "peer.state", "id": self.peer_id, "state": state})

    async def on_admit(self, *, id: str):  # noqa: A002 - the protocol's field name
        await self.tell_waiting(id, {"type": "lobby.admit"})

    async def on_deny(self, *, id: str):  # noqa: A002
        await self.tell_waiting(id, {"type": "lobby.deny"})

    async def tell_waiting(self, peer_id: str, event: dict):
        waiting = self.lobby.get(peer_id)
        if waiting is not None and not await self.send_to(waiting["channel"], event):
            await self.send_error(
                signaling.PEER_BUSY,
                _("The peer %(id)s is not keeping up; try again.") % {"id": peer_id},
            )

    async def on_kick(self, *, id: str):  # noqa: A002
        """Ban the person; the ban reaches their connections (and any later one) as access news."""
        peer = self.peers.get(id) or self.lobby.get(id)
        if peer is None:
            return
        if peer.get("role") == Role.HOST:
            await self.send_error(signaling.BAD_VALUE, _("The room's owner cannot be removed."))
            return
        try:
            await kick(self.arrival, peer)
        except ValidationError as error:
            await self.send_error(signaling.BAD_VALUE, " ".join(error.messages))
            return
        if self.participant is not None and id in self.peers:
            await self.media_call("kick", id)  # their streams stop now, whatever their page does

    async def on_mute(self, *, id: str):  # noqa: A002
        peer = self.peers.get(id)
        if peer is not None:
            by = {"id": self.peer_id, "name": self.entry["name"]}
            await self.send_to(peer["channel"], {"type": "peer.mute", "by": by})
            if self.participant is not None:
                await self.media_call("mute", id)  # silenced in the media server as well

    async def on_lock(self, *, locked: bool):
        # The service tells every connection in the room, this one included, once committed.
        await set_locked(self.arrival.room_id, locked)

    async def on_end(self):
        await end_call(self.arrival.room_id, self.peer_id)

    async def on_publish(self, *, feed: str, description: dict):
        answer = await self.media_call("publish", feed, description)
        if answer is not None:
            await self.send_json(signaling.published(feed, answer))

    async def on_unpublish(self, *, feed: str):
        await self.media_call("unpublish", feed)

    async def on_subscribe_answer(self, *, description: dict):
        await self.media_call("answered", description)

    async def on_receive(self, *, streams: list):
        await self.media_call("receive", streams)

    async def on_trickle(self, *, target: str, candidate: dict | None):
        await self.media_call("trickle", target, candidate)

    async def on_chat(self, **message):
        if self.participant is None:
            await self.send_error(
                signaling.WRONG_MODE, _("This call is peer-to-peer: chat goes on data channels.")
            )
            return
        sender = {"id": self.peer_id, "name": self.entry["name"]}
        await self.tell_room({"type": "chat.message", "message": message, "sender": sender})

    async def on_chat_history(self, *, to: str, messages: list):
        peer = self.peers.get(to)
        if peer is not None and self.participant is not None:
            event = {"type": "chat.history", "sender": self.peer_id, "messages": messages}
            await self.send_to(peer["channel"], event)

    HANDLERS = {
        signaling.SIGNAL: on_signal,
        signaling.STATE: on_state,
        signaling.ADMIT: on_admit,
        signaling.DENY: on_deny,
        signaling.KICK: on_kick,
        signaling.MUTE: on_mute,
        signaling.LOCK: on_lock,
        signaling.END: on_end,
        signaling.PUBLISH: on_publish,
        signaling.UNPUBLISH: on_unpublish,
        signaling.SUBSCRIBE_ANSWER: on_subscribe_answer,
        signaling.RECEIVE: on_receive,
        signaling.TRICKLE: on_trickle,
        signaling.CHAT: on_chat,
        signaling.CHAT_HISTORY: on_chat_history,
    }

    async def send_error(self, code: str, message: str):
        await self.send_json(signaling.error_message(code, message))

    async def send_json(self, content: dict):
        await self.send(text_data=json.dumps(content))

    async def send_to(self, channel: str, event: dict) -> bool:
        """Send an event to one connection; return False when its queue is full."""
        try:
            await retrying(self.channel_layer.send, channel, event)
        except ChannelFull:
            return False
        return True

    async def tell_room(self, event: dict):
        await retrying(self.channel_layer.group_send, self.group, event)

    # --- Events from the channel layer --------------------------------------------------------
    # Event types are the server's own; a client's message never names one.

    async def signal_relay(self, event):
        if not self.admitted or event["room"] != self.slug:
            return
        # A newcomer's offer can arrive before its peer.joined: learn its channel from the relay.
        self.peers.setdefault(
            event["sender"], {"id": event["sender"], "channel": event["sender_channel"]}
        )
        await self.send_json(signaling.signal(sender=event["sender"], data=event["data"]))

    async def peer_joined(self, event):
        peer = event["peer"]
        if peer["id"] == self.peer_id:
            return
        self.peers[peer["id"]] = dict(peer)
        if self.admitted:
            await self.send_json(signaling.peer_joined(public_peer(peer)))

    async def peer_left(self, event):
        if event["id"] == self.peer_id:
            return
        known = self.peers.pop(event["id"], None)
        if self.admitted and known is not None:
            await self.send_json(signaling.peer_left(event["id"], event["reason"]))

    async def peer_state(self, event):
        if event["id"] != self.peer_id and event["id"] in self.peers:
            self.peers[event["id"]]["state"] = event["state"]
            if self.admitted:
                await self.send_json(signaling.peer_state(event["id"], event["state"]))

    async def peer_role(self, event):
        if event["id"] in self.peers:
            self.peers[event["id"]]["role"] = event["role"]
        if self.admitted and (event["id"] == self.peer_id or event["id"] in self.peers):
            await self.send_json(signaling.peer_role(event["id"], event["role"]))

    async def lobby_knock(self, event):
        peer = event["peer"]
        if self.admitted and self.is_host and peer["id"] != self.peer_id:
            self.lobby[peer["id"]] = dict(peer)
            await self.send_json(signaling.knock(peer=peer))

    async def lobby_left(self, event):
        if self.lobby.pop(event["id"], None) is not None and self.admitted:
            await self.send_json(signaling.lobby_left(event["id"]))

    async def lobby_admit(self, event):
        if not self.waiting:
            return
        admission = await retrying(
            self.presence.admit, self.slug, self.entry, limit=self.room_limit
        )
        if admission is None:
            await self.close_with(signaling.ROOM_FULL)
        await self.enter(admission)

    async def lobby_deny(self, event):
        if self.waiting:
            await self.close_with(signaling.DENIED)

    async def peer_replaced(self, event):
        # A newer connection of the same page took this one's place (and reported it).
        await self.close_with(signaling.REPLACED)

    async def peer_swept(self, event):
        # Another process found this peer's entry stale and reported it lost: come back anew.
        await self.close_with(signaling.UNAVAILABLE)

    async def peer_mute(self, event):
        if self.admitted:
            await self.send_json(signaling.mute_request(by=event["by"]))

    async def room_locked(self, event):
        self.locked = event["locked"]
        if self.admitted:
            await self.send_json(signaling.room_state(locked=event["locked"]))

    async def chat_message(self, event):
        if self.admitted and self.protocol >= 2:
            await self.send_json(signaling.chat(event["message"], sender=event["sender"]))

    async def chat_history(self, event):
        if self.admitted and event["sender"] in self.peers:
            await self.send_json(signaling.chat_history(event["messages"], sender=event["sender"]))

    async def call_file(self, event):
        if self.admitted and self.protocol >= 2:
            await self.send_json(signaling.file_shared(event["file"]))

    async def room_end(self, event):
        self.leave_reason = signaling.LEFT
        if self.participant is not None and event.get("by") in ("", self.peer_id):
            await self.media_call("destroy_room")  # the media server's room closes with the call
        by_me = event.get("by") == self.peer_id
        await self.close_with(signaling.ENDED, message=signaling.ended_message(by_you=by_me))

    async def access_changed(self, event):
        """Someone's access to the room changed: ask the access rule again for this person."""
        standing = await standing_now(self.arrival)
        if not standing.allowed:
            self.leave_reason = signaling.REMOVED
            await self.close_with(standing.code, message=standing.message)
        if standing.role == self.role:
            return
        was_host, self.role = self.is_host, standing.role
        self.entry["role"] = self.role
        if self.admitted:
            await retrying(self.presence.update, self.slug, self.entry)
            await self.tell_room({"type": "peer.role", "id": self.peer_id, "role": self.role})
            if self.is_host and not was_host:
                await self.tell_of_lobby()
        if was_host and not self.is_host:
            self.lobby.clear()
