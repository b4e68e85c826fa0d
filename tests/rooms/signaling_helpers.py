"""Clients for the signaling consumer, driven over the real ASGI application."""

import asyncio
import json
import uuid

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client

from conference.asgi import application
from rooms import selectors, signaling

ORIGIN = b"http://localhost:8000"


@database_sync_to_async
def session_cookie_for(user=None, guest=None, browser: str = "") -> bytes:
    """
    Return a Cookie header for a signed-in user, a guest's session, or an empty session;
    `browser` is the browser id the call page would have put in the session.
    """
    if user is not None:
        client = Client()
        client.force_login(user)
        session = SessionStore(client.cookies["sessionid"].value)
    else:
        session = SessionStore()
        if guest is not None:
            session[selectors.GUEST_SESSION_KEY] = {str(guest.invitation.room_id): str(guest.pk)}
    if browser:
        session[selectors.BROWSER_SESSION_KEY] = browser
    session.save()
    return f"sessionid={session.session_key}".encode()


class Peer:
    """One websocket to a room, with helpers to read exactly what it is sent."""

    def __init__(self, communicator: WebsocketCommunicator, instance: str = ""):
        self.communicator = communicator
        self.instance = instance  # as the server publishes it to the others
        self.id = None
        self.welcome = None
        self.close_code = None

    @classmethod
    async def connect(
        cls,
        slug: str,
        *,
        user=None,
        guest=None,
        origin: bytes = ORIGIN,
        page: str = "",
        browser: str = "",
        cookie: bytes = b"",
        protocol: int = 1,
    ):
        """
        Open a socket as a page would; `page` is the page's own instance name. The session is
        the user's, the guest's, or the one a browser's `cookie` (sessionid=...) names.
        """
        page = page or f"page-{uuid.uuid4().hex}"
        cookie = cookie or await session_cookie_for(user, guest, browser)
        headers = [(b"host", b"localhost:8000"), (b"origin", origin), (b"cookie", cookie)]
        query = f"instance={page}" + (f"&protocol={protocol}" if protocol != 1 else "")
        communicator = WebsocketCommunicator(
            application, f"/ws/rooms/{slug}/?{query}", headers=headers
        )
        connected, _ = await communicator.connect(timeout=5)
        assert connected, "the server must accept, then explain any refusal"
        person = f"user:{user.pk}" if user is not None else f"guest:{guest.pk}" if guest else ""
        return cls(communicator, signaling.peer_instance(person, page) if person else "")

    @classmethod
    async def join(cls, slug: str, **kwargs) -> "Peer":
        """Connect and read the welcome, which must come first."""
        peer = await cls.connect(slug, **kwargs)
        welcome = await peer.receive()
        assert welcome["type"] == "welcome", welcome
        peer.welcome = welcome
        peer.id = welcome["self"]["id"]
        return peer

    async def receive(self, timeout: float = 3) -> dict:
        output = await self.communicator.receive_output(timeout)
        assert output["type"] == "websocket.send", output
        return json.loads(output["text"])

    async def receive_type(self, message_type: str, timeout: float = 3) -> dict:
        """Read messages until one of this type arrives (skipping presence chatter)."""
        while True:
            message = await self.receive(timeout)
            if message["type"] == message_type:
                return message

    async def closed_with(self, timeout: float = 3) -> int:
        output = await self.communicator.receive_output(timeout)
        assert output["type"] == "websocket.close", output
        return output["code"]

    async def refused(self) -> tuple[dict, int]:
        """Return the error a refused connection is sent, and the code it is closed with."""
        error = await self.receive()
        return error, await self.closed_with()

    async def send(self, message) -> None:
        if isinstance(message, bytes):
            frame = {"bytes": message}
        elif isinstance(message, str):
            frame = {"text": message}  # empty text included, as browsers may send it
        else:
            frame = {"text": json.dumps(message)}
        await self.communicator.send_input({"type": "websocket.receive", **frame})

    async def hears_nothing(self, timeout: float = 0.3) -> bool:
        return await self.communicator.receive_nothing(timeout)

    async def drain(self, quiet: float = 0.2) -> list[dict]:
        """Read everything sent so far, until the connection is quiet for a moment."""
        messages = []
        while self.close_code is None and not await self.communicator.receive_nothing(quiet):
            output = await self.communicator.receive_output()
            if output["type"] == "websocket.close":
                self.close_code = output["code"]
            else:
                messages.append(json.loads(output["text"]))
        return messages

    async def take_sent(self) -> list[dict]:
        """Read what the server has sent so far, without waiting for more."""
        messages = []
        while not self.communicator.output_queue.empty():
            output = await self.communicator.receive_output()
            if output["type"] == "websocket.close":
                self.close_code = output["code"]
            else:
                messages.append(json.loads(output["text"]))
        return messages

    async def still_answers(self) -> bool:
        await self.send({"type": "ping"})
        return await self.receive() == {"type": "pong"}

    async def leave(self) -> None:
        await self.communicator.disconnect()
        # Let the consumer finish its clean-up (presence, attendance) before the test goes on.
        await asyncio.sleep(0.05)


def receive(channel: str) -> dict:
    """Return the next event on a channel of the layer."""

    async def first_message():
        # The timeout only keeps a missing message from hanging the run.
        return await asyncio.wait_for(get_channel_layer().receive(channel), timeout=5)

    return async_to_sync(first_message)()


def pending(channel: str) -> int:
    """Return how many messages wait on a channel of the in-process layer."""
    queue = get_channel_layer().channels.get(channel)
    return 0 if queue is None else queue.qsize()
