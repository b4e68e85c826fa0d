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

import contextlib
import json
import logging
import time
from urllib.parse import parse_qs

from autobahn.exception import Disconnected
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull, StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from accounts.models import User
from rooms import live, selectors, services, signaling, turn
from rooms.connections import OUTAGE_ERRORS, ServiceUnavailable, connections, retrying
from rooms.models import Guest, Role, Room
from rooms.presence import Admission, get_presence, public_peer

logger = logging.getLogger(__name__)


@database_sync_to_async
def decide(slug: str, user, session):
    """Return the room, the guest this session is there, the browser, and the access decision."""
    room = Room.objects.select_related("owner").filter(slug=slug).first()
    guest = None
    if room is not None and not user.is_authenticated:
        guest = selectors.guest_for_session(session, room)
    browser = selectors.browser_of(session)
    decision = selectors.join_decision(room, user=user, guest=guest, browser=browser)
    return room, guest, browser, decision


@database_sync_to_async
def standing_now(room_id: int, user, guest, browser: str):
    """Ask the access rule again, for a person already in the call."""
    room = Room.objects.select_related("owner").filter(pk=room_id).first()
    return selectors.standing(room, user=user, guest=guest, browser=browser)


def set_locked(room_id: int, locked: bool) -> None:
    services.room_set_locked(room=Room.objects.get(pk=room_id), locked=locked)


def end_call(room_id: int, ended_by: str) -> None:
    services.call_end(room=Room.objects.get(pk=room_id), ended_by=ended_by)


class RoomConsumer(AsyncWebsocketConsumer):
    # --- Connection ---------------------------------------------------------------------------

    async def __call__(self, scope, receive, send):
        self.closed = False  # a close went out, or the socket is gone: nothing more is sent
        self.registered = False  # the peer is in presence (in the call or its lobby)
        self.has_left = False
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
        # Accept first: a close before accepting reaches the client as a bare HTTP 403.
        await self.accept()

        user = self.scope.get("user")
        self.room, self.guest, self.browser, self.decision = await decide(
            self.slug, user, self.scope.get("session")
        )
        if not self.decision.allowed:
            extra = (
                {"opensAt": self.decision.opens_at.isoformat()} if self.decision.opens_at else {}
            )
            await self.close_with(self.decision.code, message=self.decision.message, **extra)
        self.user = user if user is not None and user.is_authenticated else None
        self.role = self.decision.role
        self.locked = self.room.locked
        person = f"user:{self.user.pk}" if self.user else f"guest:{self.guest.pk}"
        query = parse_qs(self.scope.get("query_string", b"").decode("latin1"))
        self.entry = {
            "id": self.peer_id,
            "instance": signaling.peer_instance(person, query.get("instance", [""])[0]),
            "name": self.decision.name,
            "role": self.role,
            "state": signaling.default_state(),
            "channel": self.channel_name,
            "user_id": self.user.pk if self.user else None,
            "guest_id": str(self.guest.pk) if self.guest else None,
            "browser": self.browser,
            "attendance_id": None,
            "admitted": False,
        }
        await retrying(self.channel_layer.group_add, self.group, self.channel_name)
        if self.decision.lobby:
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
        return min(self.room.max_participants, settings.ROOM_MAX_PARTICIPANTS_LIMIT)

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
        if self.is_host and self.room.ended_at is not None:
            # A host joining a call that was ended starts it again.
            await database_sync_to_async(services.call_reopen)(room=self.room)
        # Copies: the layer hands events over uncopied, and in-process presence holds the other
        # connections' own entries; what this connection keeps, it changes on its own.
        self.peers = {other["id"]: dict(other) for other in admission.others}
        await connections().report_gone(
            self.slug, admission.departed, newcomer=self.entry["instance"]
        )
        attendance = await database_sync_to_async(services.attendance_start)(
            room=self.room, decision=self.decision, user=self.user, guest=self.guest
        )
        self.entry["attendance_id"] = attendance.pk
        await retrying(self.presence.update, self.slug, self.entry)
        # The others hear of the newcomer before it hears of them: were it the other way round, a
        # page that reconnects at once could have its older connection's peer-left overtaken by
        # that connection's own, late, peer-joined.
        await self.tell_room({"type": "peer.joined", "peer": self.entry})
        await self.send_json(
            signaling.welcome(
                self_peer=self.entry,
                peers=self.peers.values(),
                ice_servers=turn.ice_servers(peer_id=self.peer_id),
                room={"slug": self.room.slug, "name": self.room.name, "locked": self.locked},
            )
        )
        if self.is_host:
            await self.tell_of_lobby()
        if was_waiting:
            await self.tell_room({"type": "lobby.left", "id": self.peer_id})

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
        if peer is None:
            return  # gone already, or never here: dropped, as the protocol says
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
        occurrence = self.decision.occurrence
        try:
            await database_sync_to_async(services.ban_create)(
                room=self.room,
                user=await self.user_by_id(peer.get("user_id")),
                guest=await self.guest_by_id(peer.get("guest_id")),
                browser=peer.get("browser", ""),
                expires_at=occurrence.ends_at if occurrence else None,
                created_by=self.user,
            )
        except ValidationError as error:
            await self.send_error(signaling.BAD_VALUE, " ".join(error.messages))

    async def on_mute(self, *, id: str):  # noqa: A002
        peer = self.peers.get(id)
        if peer is not None:
            by = {"id": self.peer_id, "name": self.entry["name"]}
            await self.send_to(peer["channel"], {"type": "peer.mute", "by": by})

    async def on_lock(self, *, locked: bool):
        # The service tells every connection in the room, this one included, once committed.
        await database_sync_to_async(set_locked)(self.room.pk, locked)

    async def on_end(self):
        await database_sync_to_async(end_call)(self.room.pk, self.peer_id)

    HANDLERS = {
        signaling.SIGNAL: on_signal,
        signaling.STATE: on_state,
        signaling.ADMIT: on_admit,
        signaling.DENY: on_deny,
        signaling.KICK: on_kick,
        signaling.MUTE: on_mute,
        signaling.LOCK: on_lock,
        signaling.END: on_end,
    }

    @database_sync_to_async
    def user_by_id(self, user_id):
        return User.objects.filter(pk=user_id).first() if user_id else None

    @database_sync_to_async
    def guest_by_id(self, guest_id):
        return Guest.objects.select_related("invitation").filter(pk=guest_id).first()

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

    async def room_end(self, event):
        self.leave_reason = signaling.LEFT
        by_me = event.get("by") == self.peer_id
        await self.close_with(signaling.ENDED, message=signaling.ended_message(by_you=by_me))

    async def access_changed(self, event):
        """Someone's access to the room changed: ask the access rule again for this person."""
        standing = await standing_now(self.room.pk, self.user, self.guest, self.browser)
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
