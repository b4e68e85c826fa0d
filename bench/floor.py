"""
The daphne floor: the signaling protocol's subset as the least a Channels site on daphne can do.

    python -m daphne bench.floor:application

One `AsyncWebsocketConsumer` per socket, on the same route as the site's, relaying a signal
straight to the addressed peer's consumer object in this process (a dict of rooms, then peer ids,
to consumers). No channel layer (CHANNEL_LAYERS is empty), no authentication, no session, no
database, no middleware: what daphne, Channels and Django's URL routing cost by themselves, so the
site's figures can be read as a multiple of what the framework allows.
"""

import contextlib
import json

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=[],
        CHANNEL_LAYERS={},
        USE_TZ=True,
        USE_I18N=False,
        LOGGING_CONFIG=None,
    )
    django.setup()

from autobahn.exception import Disconnected  # noqa: E402 - after settings, as Channels needs
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from bench import protocol  # noqa: E402

# room slug -> peer id -> consumer
rooms: dict[str, dict[str, "FloorConsumer"]] = {}


class FloorConsumer(AsyncWebsocketConsumer):
    peer: dict | None = None

    async def connect(self):
        await self.accept()
        self.slug = self.scope["url_route"]["kwargs"]["slug"]
        self.peer = protocol.new_peer(self.scope.get("query_string", b"").decode("latin1"))
        self.room = rooms.setdefault(self.slug, {})
        others = list(self.room.values())
        self.room[self.peer["id"]] = self
        joined = protocol.peer_joined(self.peer)
        for other in others:
            await other.send_quietly(joined)
        await self.send_quietly(
            protocol.welcome(self.peer, [other.peer for other in others], self.slug)
        )

    async def receive(self, text_data=None, bytes_data=None):
        try:
            message = json.loads(text_data)
            kind = message["type"]
        except (ValueError, TypeError, KeyError):
            return
        if kind == protocol.SIGNAL:
            to = message.get("to")
            addressee = self.room.get(to) if isinstance(to, str) else None
            if addressee is not None:
                await addressee.send_quietly(protocol.signal(self.peer["id"], message.get("data")))
        elif kind == protocol.PING:
            await self.send_quietly(protocol.PONG_TEXT)

    async def disconnect(self, code):
        if self.peer is None:
            return
        self.room.pop(self.peer["id"], None)
        if not self.room:
            rooms.pop(self.slug, None)
        left = protocol.peer_left(self.peer["id"], code)
        for other in list(self.room.values()):
            await other.send_quietly(left)

    async def send_quietly(self, text: str) -> None:
        """Send, and drop the message if this socket is already closing."""
        with contextlib.suppress(Disconnected):
            await self.send(text_data=text)


# The site's own route, so that routing costs the same.
application = ProtocolTypeRouter(
    {"websocket": URLRouter([path("ws/rooms/<slug:slug>/", FloorConsumer.as_asgi())])}
)
