"""
The site's side of a Janus media server (the SFU of calls past the mesh).

Only the site talks to Janus's API, over its WebSocket transport on loopback or a private network,
with the API secret from the environment; browsers reach Janus for media only. This module is the
one small interface the rest of the site uses: a connection (`Janus`), the sessions made through
it (`Session`, kept alive while in use), and plugin handles (`Handle`) whose requests return the
plugin's answer, or raise `JanusError` with Janus's own code and reason.

A plugin request that Janus answers at once returns that answer; one that Janus acknowledges and
answers later (a VideoRoom join, configure, publish) returns the event that answers it. Events that
answer no request (a publisher arriving, a feed leaving) go to the handle's `events` queue.
"""

import asyncio
import contextlib
import itertools
import json
import secrets

import websockets

# Janus ends a session after 60 s without a request; a keepalive well inside that keeps it.
KEEPALIVE_SECONDS = 25
# How long a request may wait for its answer before the connection counts as lost.
REQUEST_TIMEOUT = 10


class JanusError(Exception):
    """Janus, or one of its plugins, refused a request."""

    def __init__(self, code: int, reason: str):
        super().__init__(f"{reason} ({code})")
        self.code = code
        self.reason = reason


class Janus:
    """One WebSocket connection to a Janus server's API (or, with admin=True, its admin API)."""

    def __init__(self, socket, *, secret: str, admin: bool):
        self.socket = socket
        self.secret_field = "admin_secret" if admin else "apisecret"
        self.secret = secret
        self.transactions = (secrets.token_hex(6) + f"-{n}" for n in itertools.count())
        self.waiting: dict[str, tuple[asyncio.Future, bool]] = {}  # by transaction
        self.handles: dict[int, Handle] = {}  # by handle id, for their events
        self.reader = asyncio.get_running_loop().create_task(self.read())

    @classmethod
    async def connect(cls, url: str, *, secret: str = "", admin: bool = False) -> "Janus":
        protocol = "janus-admin-protocol" if admin else "janus-protocol"
        socket = await websockets.connect(url, subprotocols=[protocol], max_size=None)
        return cls(socket, secret=secret, admin=admin)

    async def close(self) -> None:
        await self.socket.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader

    async def request(self, body: dict, *, answered_later: bool = False) -> dict:
        """Send a request; return its answer (for `answered_later`, the event after the ack)."""
        transaction = next(self.transactions)
        answer = asyncio.get_running_loop().create_future()
        self.waiting[transaction] = (answer, answered_later)
        message = {**body, "transaction": transaction}
        if self.secret:
            message[self.secret_field] = self.secret
        try:
            await self.socket.send(json.dumps(message))
            async with asyncio.timeout(REQUEST_TIMEOUT):
                reply = await answer
        except websockets.ConnectionClosed as closed:
            raise ConnectionError("the connection to Janus closed") from closed
        finally:
            self.waiting.pop(transaction, None)
        if reply.get("janus") == "error":
            raise JanusError(reply["error"]["code"], reply["error"]["reason"])
        return reply

    async def session(self) -> "Session":
        reply = await self.request({"janus": "create"})
        return Session(self, reply["data"]["id"])

    async def read(self) -> None:
        try:
            async for raw in self.socket:
                self.take(json.loads(raw))
        except websockets.ConnectionClosed:
            pass
        finally:
            lost = ConnectionError("the connection to Janus closed")
            for answer, _ in self.waiting.values():
                if not answer.done():
                    answer.set_exception(lost)
            for handle in self.handles.values():
                handle.events.put_nowait({"janus": "detached", "reason": "connection lost"})

    def take(self, message: dict) -> None:
        waiting = self.waiting.get(message.get("transaction", ""))
        if waiting is not None:
            answer, answered_later = waiting
            if not (answered_later and message.get("janus") == "ack") and not answer.done():
                answer.set_result(message)
                return
            if message.get("janus") == "ack":
                return
        handle = self.handles.get(message.get("sender"))
        if handle is not None:
            handle.events.put_nowait(message)


class Session:
    """A Janus session: the handles of one connection of ours, kept alive while it lasts."""

    def __init__(self, janus: Janus, session_id: int):
        self.janus = janus
        self.id = session_id
        self.keeper = asyncio.get_running_loop().create_task(self.keep_alive())

    async def request(self, body: dict, **options) -> dict:
        return await self.janus.request({**body, "session_id": self.id}, **options)

    async def attach(self, plugin: str) -> "Handle":
        reply = await self.request({"janus": "attach", "plugin": plugin})
        handle = Handle(self, reply["data"]["id"])
        self.janus.handles[handle.id] = handle
        return handle

    async def keep_alive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            try:
                await self.request({"janus": "keepalive"})
            except ConnectionError:
                return  # the session went with the connection
            except (JanusError, TimeoutError):
                pass  # a slow or refused keepalive: the next one may yet keep the session

    async def destroy(self) -> None:
        """End the session and every handle in it (Janus does the same when our socket goes)."""
        self.keeper.cancel()  # also when the request below fails
        for handle_id in [key for key, h in self.janus.handles.items() if h.session is self]:
            del self.janus.handles[handle_id]
        await self.request({"janus": "destroy"})


class Handle:
    """A handle on a Janus plugin, within a session."""

    def __init__(self, session: Session, handle_id: int):
        self.session = session
        self.id = handle_id
        self.events: asyncio.Queue[dict] = asyncio.Queue()

    async def message(
        self, body: dict, *, jsep: dict | None = None, answered_later: bool = False
    ) -> dict:
        """
        Send the plugin a request; return its data, with the JSEP Janus sent along (if any) under
        "jsep". A plugin's refusal (its error_code) raises JanusError.
        """
        request = {"janus": "message", "handle_id": self.id, "body": body}
        if jsep is not None:
            request["jsep"] = jsep
        reply = await self.session.request(request, answered_later=answered_later)
        data = dict(reply.get("plugindata", {}).get("data", {}))
        if "error_code" in data:
            raise JanusError(data["error_code"], data.get("error", "refused"))
        if "jsep" in reply:
            data["jsep"] = reply["jsep"]
        return data

    async def trickle(self, candidate: dict | None) -> None:
        """Hand Janus a browser's ICE candidate (None: gathering is complete)."""
        request = {"janus": "trickle", "handle_id": self.id}
        request["candidate"] = candidate if candidate is not None else {"completed": True}
        await self.session.request(request)

    async def detach(self) -> None:
        self.session.janus.handles.pop(self.id, None)
        await self.session.request({"janus": "detach", "handle_id": self.id})
