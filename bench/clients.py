"""
The load's clients: signaling connections that speak docs/signaling.md, as a page does.

The same client drives the bare relay, the daphne floor and the site: it opens
`ws://127.0.0.1:<port>/ws/rooms/<slug>/` with the site's Origin and, where the seat has one, the
session cookie; reads the welcome; keeps track of who else is in the call; pings; and hands every
relayed signal to the scenario with the time it was read.

Signals are what browsers send: session descriptions of about 300 bytes and ICE candidates. A
description carries its sequence number and its send time (time.perf_counter_ns() of this process)
in the SDP's origin line, `o=- <sequence> <send time> IN IP4 127.0.0.1`, which every server relays
untouched, so the receiver computes the latency.
"""

import asyncio
import contextlib
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

# Each client pings this often, as the site's page does (more often than the 25 s the site
# waits before it closes a silent connection).
PING_EVERY = 10.0
# How many websocket handshakes run at once while a crowd connects.
CONNECTING_AT_ONCE = 50

# The rest of an offer from a browser, after its origin line: about 300 bytes in all.
SDP_REST = (
    "s=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\n"
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n"
    "a=ice-ufrag:EsJ3\r\na=ice-pwd:asd88fgpdd777uzjYhagZg4TyWzlUz8j\r\na=ice-options:trickle\r\n"
    "a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0\r\n"
    "a=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\n"
)


def description(kind: str, sequence: int, sent_ns: int) -> dict:
    """Return the `data` of a signal carrying a session description of this type."""
    sdp = f"v=0\r\no=- {sequence} {sent_ns} IN IP4 127.0.0.1\r\n{SDP_REST}"
    return {"description": {"type": kind, "sdp": sdp}}


def candidate(foundation: int) -> dict:
    """Return the `data` of a signal carrying an ICE candidate, told apart by its foundation."""
    line = (
        f"candidate:{foundation} 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 0.0.0.0 rport 0"
    )
    return {
        "candidate": {
            "candidate": line,
            "sdpMid": "0",
            "sdpMLineIndex": 0,
            "usernameFragment": "EsJ3",
        }
    }


def stamp(data: dict) -> tuple[str, int, int]:
    """Return a relayed signal's kind ("offer", "answer", "candidate"), sequence and send time."""
    if "description" in data:
        described = data["description"]
        _version, sequence, sent_ns, _rest = described["sdp"].split(" ", 3)
        return described["type"], int(sequence), int(sent_ns)
    return "candidate", int(data["candidate"]["candidate"].split(" ", 1)[0][10:]), 0


class Refused(Exception):
    """The server answered the websocket with an error and a close instead of a welcome."""


class Peer:
    """One signaling connection in a call."""

    def __init__(self, websocket: ClientConnection):
        self.websocket = websocket
        self.id: str | None = None
        self.welcome: dict | None = None
        self.others: set[str] = set()  # the ids of the other peers in the call
        self.partner: str | None = None  # the peer it signals to, in a room of two
        self.welcomed = asyncio.Event()
        self.others_changed = asyncio.Event()
        self.errors: Counter = Counter()  # error codes the server sent
        self.pongs = 0
        self.ponged = asyncio.Event()  # set at each pong
        self.close_code: int | None = None  # set when the connection closed
        self.closing = False  # this side closed it
        # Called with (peer, message, the perf_counter_ns it was read at) for each signal.
        self.on_signal: Callable[[Peer, dict, int], None] | None = None
        # Called with the peer once it has its welcome.
        self.on_welcome: Callable[[Peer], None] | None = None
        self.tasks: list[asyncio.Task] = []

    @classmethod
    async def join(
        cls,
        port: int,
        slug: str,
        session: str | None,
        *,
        on_signal: Callable[["Peer", dict, int], None] | None = None,
        on_welcome: Callable[["Peer"], None] | None = None,
        give_up_after: float = 60.0,
    ) -> "Peer":
        """Connect to a room and wait for the welcome; raise Refused for anything else."""
        websocket = await connect(
            f"ws://127.0.0.1:{port}/ws/rooms/{slug}/?instance={secrets.token_urlsafe(12)}",
            origin=f"http://127.0.0.1:{port}",
            additional_headers={"Cookie": f"sessionid={session}"} if session else None,
            compression=None,  # browsers offer permessage-deflate, but daphne never takes it
            ping_interval=None,  # the protocol's own ping keeps the connection alive
            open_timeout=give_up_after,
            close_timeout=10,
            max_size=None,
        )
        peer = cls(websocket)
        peer.on_signal, peer.on_welcome = on_signal, on_welcome
        reader = asyncio.create_task(peer.read())
        peer.tasks.append(reader)
        welcomed = asyncio.ensure_future(peer.welcomed.wait())
        try:
            await asyncio.wait(
                [welcomed, reader], timeout=give_up_after, return_when=asyncio.FIRST_COMPLETED
            )
            if not peer.welcomed.is_set():
                raise Refused(f"errors {dict(peer.errors)}, close code {peer.close_code}")
        except BaseException:
            await peer.drop()
            raise
        finally:
            welcomed.cancel()
        return peer

    async def read(self) -> None:
        try:
            async for text in self.websocket:
                read_at = time.perf_counter_ns()
                message = json.loads(text)
                kind = message.get("type")
                if kind == "signal":
                    if message["from"] not in self.others:  # an offer before its peer-joined
                        self.others.add(message["from"])
                        self.others_changed.set()
                    if self.on_signal is not None:
                        self.on_signal(self, message, read_at)
                elif kind == "pong":
                    self.pongs += 1
                    self.ponged.set()
                elif kind == "welcome":
                    self.welcome = message
                    self.id = message["self"]["id"]
                    self.others.update(peer["id"] for peer in message["peers"])
                    self.others_changed.set()
                    self.welcomed.set()
                    if self.on_welcome is not None:
                        self.on_welcome(self)
                elif kind == "peer-joined":
                    self.others.add(message["peer"]["id"])
                    self.others_changed.set()
                elif kind == "peer-left":
                    self.others.discard(message["id"])
                    self.others_changed.set()
                elif kind == "error":
                    self.errors[message.get("code")] += 1
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.websocket.close_code or 1006

    async def wait_for_others(self, count: int) -> None:
        """Wait until this peer knows of `count` others in the call."""
        while len(self.others) < count:
            self.others_changed.clear()
            await self.others_changed.wait()

    async def wait_to_meet(self, peer_id: str) -> None:
        """Wait until this peer knows that peer is in the call (by welcome or peer-joined)."""
        while peer_id not in self.others:
            self.others_changed.clear()
            await self.others_changed.wait()

    async def send(self, message: dict) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.websocket.send(json.dumps(message))

    async def signal(self, to: str, data: dict) -> None:
        await self.send({"type": "signal", "to": to, "data": data})

    def keep_alive(self, *, first_after: float, every: float = PING_EVERY) -> None:
        """Ping every `every` seconds, the first after `first_after` (to spread a crowd's)."""

        async def ping() -> None:
            await asyncio.sleep(first_after)
            while self.close_code is None:
                await self.send({"type": "ping"})
                await asyncio.sleep(every)

        self.tasks.append(asyncio.create_task(ping()))

    @property
    def closed_by_server(self) -> bool:
        return self.close_code is not None and not self.closing

    async def close(self) -> None:
        """Leave the call: close the websocket with 1000, as a page does."""
        self.closing = True
        await self.websocket.close()
        await self.stop_tasks()

    async def drop(self) -> None:
        """Drop the TCP connection without a close frame, as a laptop lid shut does."""
        self.closing = True
        self.websocket.transport.abort()
        await self.stop_tasks()

    async def stop_tasks(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def join_all(
    port: int | list[int],
    seats: list[tuple[str, str | None]],
    *,
    at_once: int = CONNECTING_AT_ONCE,
    **callbacks,
) -> list[Peer]:
    """
    Connect a crowd, `at_once` handshakes at a time; return them in seat order. With several
    ports (processes of one site), the seats take them in turn.
    """
    gate = asyncio.Semaphore(at_once)
    ports = port if isinstance(port, list) else [port]

    async def join(index: int, slug: str, session: str | None) -> Peer:
        async with gate:
            return await Peer.join(ports[index % len(ports)], slug, session, **callbacks)

    results = await asyncio.gather(
        *(join(index, slug, session) for index, (slug, session) in enumerate(seats)),
        return_exceptions=True,
    )
    failures = [result for result in results if isinstance(result, BaseException)]
    if failures:
        await asyncio.gather(
            *(peer.close() for peer in results if isinstance(peer, Peer)), return_exceptions=True
        )
        kinds = Counter(f"{type(failure).__name__}: {failure}"[:200] for failure in failures)
        raise Refused(f"{len(failures)} of {len(seats)} could not join: {dict(kinds)}")
    return results


async def close_all(peers: list[Peer]) -> None:
    await asyncio.gather(*(peer.close() for peer in peers), return_exceptions=True)
