"""
A signaling client written from docs/signaling.md alone, over a real websocket (the websockets
library), as a non-browser WebRTC implementation would speak to the server.
"""

import asyncio
import json

from websockets.asyncio.client import connect


class SignalingClient:
    def __init__(self, websocket):
        self.websocket = websocket
        self.welcome = None
        self.id = None

    @classmethod
    async def join(cls, port: int, slug: str, session_key: str) -> "SignalingClient":
        websocket = await connect(
            f"ws://127.0.0.1:{port}/ws/rooms/{slug}/",
            origin=f"http://127.0.0.1:{port}",
            additional_headers={"Cookie": f"sessionid={session_key}"},
        )
        client = cls(websocket)
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

    async def close(self) -> None:
        await self.websocket.close()
