"""
The signaling consumer: one websocket per person in a room's call (see docs/signaling.md).

It asks the access rule once, at connect, and keeps the answer; after that, messages are parsed by
rooms.signaling and relayed without touching the database. Descriptions and candidates go to one
peer's own channel; only room-wide notices (presence, lock, end) go to the room's group.
"""

import asyncio
import json
import logging
import time
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from accounts.models import User
from rooms import live, selectors, services, signaling, turn
from rooms.models import Guest, Role, Room
from rooms.presence import get_presence, public_peer

logger = logging.getLogger(__name__)


@database_sync_to_async
def decide(slug: str, user, session):
    room = Room.objects.select_related("owner").filter(slug=slug).first()
    guest = None
    if room is not None and not user.is_authenticated:
        guest = selectors.guest_for_session(session, room)
    return room, guest, selectors.join_decision(room, user=user, guest=guest)


def set_locked(room_id: int, locked: bool) -> None:
    services.room_set_locked(room=Room.objects.get(pk=room_id), locked=locked)


class RoomConsumer(AsyncWebsocketConsumer):
    # --- Connection ---------------------------------------------------------------------------

    async def connect(self):
        self.slug = self.scope["url_route"]["kwargs"]["slug"]
        self.peer_id = signaling.new_peer_id()
        self.presence = get_presence()
        self.group = live.room_group(self.slug)
        self.admitted = False
        self.waiting = False
        self.closing = False
        self.peers: dict[str, dict] = {}  # the other peers in the call, by id
        self.lobby: dict[str, dict] = {}  # people waiting, known to hosts only
        self.heartbeat = None
        self.leave_reason = None  # set when the server ends this connection for a reason
        self.limiter = signaling.RateLimiter(
            settings.SIGNALING_RATE_PER_SECOND, settings.SIGNALING_RATE_BURST
        )
        self.last_heard = time.monotonic()
        # Accept first: a close before accepting reaches the client as a bare HTTP 403.
        await self.accept()

        user = self.scope.get("user")
        self.room, self.guest, self.decision = await decide(
            self.slug, user, self.scope.get("session")
        )
        if not self.decision.allowed:
            extra = (
                {"opensAt": self.decision.opens_at.isoformat()} if self.decision.opens_at else {}
            )
            await self.refuse(
                signaling.error_message(self.decision.code, self.decision.message, **extra),
                signaling.CLOSE_CODES[self.decision.code],
            )
            return
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
            "attendance_id": None,
        }
        await self.channel_layer.group_add(self.group, self.channel_name)
        if self.decision.lobby:
            await self.wait_in_lobby()
        else:
            await self.enter()
        if not self.closing:
            self.heartbeat = asyncio.create_task(self.beat())

    async def wait_in_lobby(self):
        self.waiting = True
        await self.presence.wait(self.slug, self.entry)
        await self.send_json(signaling.lobby())
        await self.channel_layer.group_send(self.group, {"type": "lobby.knock", "peer": self.entry})

    async def enter(self):
        """Join the call proper: take a place, welcome this peer, tell the others."""
        limit = min(self.room.max_participants, settings.ROOM_MAX_PARTICIPANTS_LIMIT)
        others = await self.presence.admit(self.slug, self.entry, limit=limit)
        if others is None:
            await self.close_with(signaling.ROOM_FULL)
            return
        was_waiting, self.waiting, self.admitted = self.waiting, False, True
        self.peers = {other["id"]: other for other in others}
        attendance = await database_sync_to_async(services.attendance_start)(
            room=self.room, decision=self.decision, user=self.user, guest=self.guest
        )
        self.entry["attendance_id"] = attendance.pk
        await self.presence.update(self.slug, self.entry)
        await self.send_json(
            signaling.welcome(
                self_peer=self.entry,
                peers=others,
                ice_servers=turn.ice_servers(peer_id=self.peer_id),
                room={"slug": self.room.slug, "name": self.room.name, "locked": self.locked},
            )
        )
        if self.is_host:
            for waiting in await self.presence.lobby(self.slug):
                self.lobby[waiting["id"]] = waiting
                await self.send_json(signaling.knock(peer=waiting))
        await self.channel_layer.group_send(self.group, {"type": "peer.joined", "peer": self.entry})
        if was_waiting:
            await self.channel_layer.group_send(
                self.group, {"type": "lobby.left", "id": self.peer_id}
            )

    async def close_with(self, code: str):
        """Send the standard error for a closing reason, then close with its code."""
        await self.refuse(signaling.closing_error(code), signaling.CLOSE_CODES[code])

    async def refuse(self, error: dict, code: int):
        self.closing = True
        await self.send_json(error)
        await self.close(code)

    async def disconnect(self, code):
        if self.heartbeat is not None:
            self.heartbeat.cancel()
        if not hasattr(self, "entry"):
            return
        entry = await self.presence.remove(self.slug, self.peer_id)
        if entry is not None:
            reason = self.leave_reason or (
                signaling.LEFT if code in (1000, 1001) else signaling.LOST
            )
            await self.announce_departure(entry, reason)
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def announce_departure(self, entry: dict, reason: str):
        """Tell the room a peer (this one, or a dead process's) is gone; end its attendance."""
        if entry["admitted"]:
            event = {"type": "peer.left", "id": entry["id"], "reason": reason}
        else:
            event = {"type": "lobby.left", "id": entry["id"]}
        await self.channel_layer.group_send(self.group, event)
        if entry.get("attendance_id") is not None:
            await database_sync_to_async(services.attendance_end)(
                attendance_id=entry["attendance_id"]
            )

    async def beat(self):
        """Keep this entry fresh, drop a silent client, sweep out the peers of dead processes."""
        ttl = settings.SIGNALING_PRESENCE_TTL
        interval = ttl / 6
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - self.last_heard > ttl - interval:
                self.leave_reason = signaling.LOST
                await self.close_with(signaling.TIMED_OUT)
                return
            try:
                await self.presence.touch(self.slug, self.peer_id)
                for entry in await self.presence.sweep(self.slug, older_than=ttl / 2):
                    await self.announce_departure(entry, signaling.LOST)
            except Exception:
                # Redis may be restarting; the next beat tries again.
                logger.exception("presence heartbeat failed in room %s", self.slug)

    @property
    def is_host(self) -> bool:
        return self.role in (Role.HOST, Role.COHOST)

    # --- Messages from the client -------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if self.closing or not hasattr(self, "entry"):
            return
        self.last_heard = time.monotonic()
        if not self.limiter.allow(time.monotonic()):
            await self.close_with(signaling.RATE_LIMITED)
            return
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
        await self.channel_layer.send(
            peer["channel"],
            {
                "type": "signal.relay",
                "room": self.slug,
                "sender": self.peer_id,
                "sender_channel": self.channel_name,
                "data": data,
            },
        )

    async def on_state(self, *, state: dict):
        self.entry["state"] = state
        await self.presence.update(self.slug, self.entry)
        await self.channel_layer.group_send(
            self.group, {"type": "peer.state", "id": self.peer_id, "state": state}
        )

    async def on_admit(self, *, id: str):  # noqa: A002 - the protocol's field name
        waiting = self.lobby.get(id)
        if waiting is not None:
            await self.channel_layer.send(waiting["channel"], {"type": "lobby.admit"})

    async def on_deny(self, *, id: str):  # noqa: A002
        waiting = self.lobby.get(id)
        if waiting is not None:
            await self.channel_layer.send(waiting["channel"], {"type": "lobby.deny"})

    async def on_kick(self, *, id: str):  # noqa: A002
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
                expires_at=occurrence.ends_at if occurrence else None,
                created_by=self.user,
            )
        except ValidationError as error:
            await self.send_error(signaling.BAD_VALUE, " ".join(error.messages))
            return
        await self.channel_layer.send(peer["channel"], {"type": "peer.kick"})

    async def on_mute(self, *, id: str):  # noqa: A002
        peer = self.peers.get(id)
        if peer is not None:
            await self.channel_layer.send(
                peer["channel"],
                {"type": "peer.mute", "by": {"id": self.peer_id, "name": self.entry["name"]}},
            )

    async def on_lock(self, *, locked: bool):
        # The service tells every connection in the room, this one included, once committed.
        await database_sync_to_async(set_locked)(self.room.pk, locked)

    async def on_end(self):
        await self.channel_layer.group_send(self.group, {"type": "room.end"})

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
        return Guest.objects.filter(pk=guest_id).first() if guest_id else None

    async def send_error(self, code: str, message: str):
        await self.send_json(signaling.error_message(code, message))

    async def send_json(self, content: dict):
        await self.send(text_data=json.dumps(content))

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
        self.peers[peer["id"]] = peer
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

    async def lobby_knock(self, event):
        peer = event["peer"]
        if self.admitted and self.is_host and peer["id"] != self.peer_id:
            self.lobby[peer["id"]] = peer
            await self.send_json(signaling.knock(peer=peer))

    async def lobby_left(self, event):
        if self.lobby.pop(event["id"], None) is not None and self.admitted:
            await self.send_json(signaling.lobby_left(event["id"]))

    async def lobby_admit(self, event):
        if self.waiting and not self.closing:
            await self.enter()

    async def lobby_deny(self, event):
        if self.waiting:
            await self.close_with(signaling.DENIED)

    async def peer_kick(self, event):
        self.leave_reason = signaling.REMOVED
        await self.close_with(signaling.KICKED)

    async def peer_mute(self, event):
        if self.admitted:
            await self.send_json(signaling.mute_request(by=event["by"]))

    async def room_locked(self, event):
        self.locked = event["locked"]
        if self.admitted:
            await self.send_json(signaling.room_state(locked=event["locked"]))

    async def room_end(self, event):
        if not self.closing:
            self.leave_reason = signaling.LEFT
            await self.close_with(signaling.ENDED)
