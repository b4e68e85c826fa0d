"""
A signaling client written from docs/signaling.md alone, over a real websocket (the websockets
library), as a non-browser WebRTC implementation would speak to the server.
"""

import asyncio
import contextlib
import functools
import json

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


class LateCloser(ClientConnection):
    """A connection that answers the server's close frame only after a delay, as a busy client."""

    close_reply_delay = 0.1

    def send_data(self) -> None:
        if self.protocol.close_rcvd is not None and not getattr(self, "answering", False):
            self.answering = True
            send = functools.partial(ClientConnection.send_data, self)
            asyncio.get_running_loop().call_later(self.close_reply_delay, send)
            return
        super().send_data()


class SignalingClient:
    def __init__(self, websocket):
        self.websocket = websocket
        self.welcome = None
        self.id = None

    @classmethod
    async def connect(
        cls,
        port: int,
        slug: str,
        session_key: str,
        *,
        instance: str = "",
        late_closer=False,
        protocol: int = 1,
    ) -> "SignalingClient":
        """Open the websocket; `instance` is the page's name, kept across reconnections."""
        query = f"instance={instance}" + (f"&protocol={protocol}" if protocol != 1 else "")
        websocket = await connect(
            f"ws://127.0.0.1:{port}/ws/rooms/{slug}/?{query}",
            origin=f"http://127.0.0.1:{port}",
            additional_headers={"Cookie": f"sessionid={session_key}"},
            create_connection=LateCloser if late_closer else None,
        )
        return cls(websocket)

    @classmethod
    async def join(cls, port: int, slug: str, session_key: str, **kwargs) -> "SignalingClient":
        """Connect and read the welcome, which must come first."""
        client = await cls.connect(port, slug, session_key, **kwargs)
        client.welcome = await client.receive()
        assert client.welcome["type"] == "welcome", client.welcome
        client.id = client.welcome["self"]["id"]
        return client

    async def send(self, message: dict) -> None:
        await self.websocket.send(json.dumps(message))

    async def receive(self, timeout: float = 5) -> dict:
        return json.loads(await asyncio.wait_for(self.websocket.recv(), timeout))

    async def receive_type(self, message_type: str, timeout: float = 5) -> dict:
        async with asyncio.timeout(timeout):
            while True:
                message = await self.receive(timeout)
                if message["type"] == message_type:
                    return message

    async def closed_with(self, timeout: float = 5) -> int:
        """Read until the server closes the connection; return the close code."""
        async with asyncio.timeout(timeout):
            with contextlib.suppress(ConnectionClosed):
                async for _message in self.websocket:
                    pass
        return self.websocket.close_code

    def keep_alive(self, every: float = 2.0) -> asyncio.Task:
        """Ping in the background, as a page does; cancel the task to stop."""

        async def ping():
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await asyncio.sleep(every)
                    await self.send({"type": "ping"})

        return asyncio.get_running_loop().create_task(ping())

    async def still_answers(self) -> bool:
        await self.send({"type": "ping"})
        return await self.receive_type("pong") == {"type": "pong"}

    async def close(self) -> None:
        await self.websocket.close()
