"""
The bare relay: the signaling protocol's subset on the `websockets` library's asyncio server.

    python -m bench.relay --port 8765

It serves `ws://127.0.0.1:<port>/ws/rooms/<slug>/` with no authentication and no Origin check,
welcomes each connection with the others in its room, relays `signal` to the one peer named by
`to` with the sender's id as `from`, answers `ping` and reports `peer-left` when a socket closes.
It is what relaying costs in Python with nothing else in the way: the lower baseline of the bench.
Malformed or unknown messages are ignored.
"""

import argparse
import asyncio
import contextlib
import json
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bench import protocol


@dataclass
class Member:
    peer: dict  # as the others see it
    websocket: ServerConnection


# room slug -> peer id -> member
rooms: dict[str, dict[str, Member]] = {}


async def send_quietly(websocket: ServerConnection, text: str) -> None:
    """Send, and drop the message if the peer is already gone."""
    with contextlib.suppress(ConnectionClosed):
        await websocket.send(text)


async def handle(websocket: ServerConnection) -> None:
    path, _, query = websocket.request.path.partition("?")
    slug = protocol.room_slug(path)
    if slug is None:
        await websocket.close(4404)
        return
    peer = protocol.new_peer(query)
    room = rooms.setdefault(slug, {})
    others = list(room.values())
    room[peer["id"]] = Member(peer, websocket)
    try:
        joined = protocol.peer_joined(peer)
        for other in others:
            await send_quietly(other.websocket, joined)
        await websocket.send(protocol.welcome(peer, [other.peer for other in others], slug))
        async for text in websocket:
            await on_message(websocket, room, peer["id"], text)
    except ConnectionClosed:
        pass
    finally:
        room.pop(peer["id"], None)
        if not room:
            rooms.pop(slug, None)
        left = protocol.peer_left(peer["id"], websocket.close_code)
        for other in list(room.values()):
            await send_quietly(other.websocket, left)


async def on_message(
    websocket: ServerConnection, room: dict[str, Member], sender_id: str, text
) -> None:
    try:
        message = json.loads(text)
        kind = message["type"]
    except (ValueError, TypeError, KeyError):
        return
    if kind == protocol.SIGNAL:
        addressee = room.get(message.get("to")) if isinstance(message.get("to"), str) else None
        if addressee is not None:
            await send_quietly(addressee.websocket, protocol.signal(sender_id, message.get("data")))
    elif kind == protocol.PING:
        await send_quietly(websocket, protocol.PONG_TEXT)


async def serve_forever(host: str, port: int) -> None:
    async with serve(
        handle,
        host,
        port,
        compression=None,  # the clients never offer it; said here so it is no difference
        ping_interval=None,  # clients ping with the protocol's own ping
        max_size=1024 * 1024,
    ) as server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.relay", description=__doc__.split("\n")[1]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)
    asyncio.run(serve_forever(args.host, args.port))


if __name__ == "__main__":
    main()
