"""
A minute of churn in five rooms on two daphne processes sharing a Redis: people join, leave,
drop without a close, go silent, reconnect from the same page, are kicked, and calls are ended and
started again. Afterwards presence, the people endpoint, attendance and every page's own list of
peers agree exactly with who is connected, and no consumer left a traceback in the logs.
"""

import asyncio
import collections
import contextlib
import json
import random
import time
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.live_site import SESSIONS, LiveSite, people_in_call

pytestmark = pytest.mark.slow

CHURN_SECONDS = 60
PRESENCE_TTL = 12  # silent connections are closed after 10 s
ROOMS = 5
PEOPLE = 40

SEED = """
from tests.factories import RoomFactory, UserFactory

rooms = []
for number in range(ROOMS):
    host = UserFactory(username=f"host{number}", display_name=f"Host {number}")
    room = RoomFactory(owner=host, name=f"Soak {number}", access="members", max_participants=6)
    rooms.append({"slug": room.slug, "host": session_for(host), "host_name": f"Host {number}"})
people = [UserFactory(username=f"person{n}", display_name=f"Person {n}") for n in range(PEOPLE)]
print(json.dumps({
    "rooms": rooms,
    "people": [{"name": p.display_name, "session": session_for(p)} for p in people],
}))
"""


class Page:
    """A call page as docs/signaling.md describes one: it keeps its own list of peers."""

    def __init__(self, name: str, session: str, slug: str, *, host: bool = False):
        self.name, self.session, self.slug, self.host = name, session, slug, host
        self.instance = uuid.uuid4().hex
        self.websocket = None
        self.id = None
        self.peers: dict[str, str] = {}  # peer id -> name
        self.tasks: list[asyncio.Task] = []
        self.silent = False
        self.refused: str | None = None

    @property
    def connected(self) -> bool:
        return (
            self.id is not None and self.websocket is not None and self.websocket.close_code is None
        )

    async def open(self, port: int) -> bool:
        """Connect and read the first message; return whether this page is now in the call."""
        await self.stop_tasks()
        self.id, self.peers, self.silent, self.refused = None, {}, False, None
        self.websocket = await connect(
            f"ws://127.0.0.1:{port}/ws/rooms/{self.slug}/?instance={self.instance}",
            origin=f"http://127.0.0.1:{port}",
            additional_headers={"Cookie": f"sessionid={self.session}"},
        )
        first = json.loads(await asyncio.wait_for(self.websocket.recv(), 10))
        if first["type"] != "welcome":
            self.refused = first.get("code")
            await self.websocket.close()
            return False
        self.id = first["self"]["id"]
        self.peers = {peer["id"]: peer["name"] for peer in first["peers"]}
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self.read()), loop.create_task(self.ping())]
        return True

    async def read(self):
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.websocket:
                message = json.loads(raw)
                if message["type"] == "peer-joined":
                    self.peers[message["peer"]["id"]] = message["peer"]["name"]
                elif message["type"] == "peer-left":
                    self.peers.pop(message["id"], None)

    async def ping(self):
        with contextlib.suppress(ConnectionClosed):
            while not self.silent:
                await self.websocket.send(json.dumps({"type": "ping"}))
                await asyncio.sleep(3)

    async def send(self, message: dict):
        with contextlib.suppress(ConnectionClosed):
            await self.websocket.send(json.dumps(message))

    async def leave(self):
        await self.websocket.close()
        await self.stop_tasks()

    def drop(self):
        """Lose the connection without a close frame, as a network that vanishes."""
        self.websocket.transport.abort()

    async def stop_tasks(self):
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []


async def test_a_minute_of_churn_leaves_no_ghost_and_no_traceback(tmp_path, redis_server):
    site = LiveSite(tmp_path, redis_url=redis_server.url, SIGNALING_PRESENCE_TTL=str(PRESENCE_TTL))
    try:
        world = site.run(f"ROOMS = {ROOMS}\nPEOPLE = {PEOPLE}\n" + SESSIONS + SEED)
        ports = [site.start(), site.start()]
        chance = random.Random(8)  # noqa: S311 - a reproducible churn, not a secret
        hosts = [Page(r["host_name"], r["host"], r["slug"], host=True) for r in world["rooms"]]
        pages = [
            Page(person["name"], person["session"], chance.choice(world["rooms"])["slug"])
            for person in world["people"]
        ]
        for host in hosts:
            assert await host.open(chance.choice(ports))
        operations = collections.Counter()
        deadline = time.monotonic() + CHURN_SECONDS
        while time.monotonic() < deadline:
            page = chance.choice(pages + hosts)
            roll = chance.random()
            if page.silent and page.websocket.close_code is not None:
                page.silent = False  # the server noticed, and closed it
                operations["closed for silence"] += 1
            if not page.connected and not page.silent:
                if await page.open(chance.choice(ports)):
                    operations["join"] += 1
                else:
                    operations[f"refused ({page.refused})"] += 1
            elif page.silent:
                pass  # waiting for the server to notice
            elif roll < 0.25:
                await page.leave()
                operations["leave"] += 1
            elif roll < 0.45:
                page.drop()
                operations["drop without close"] += 1
            elif roll < 0.55:
                page.drop()
                await page.open(chance.choice(ports))  # the same page, back at once
                operations["reconnect from the same page"] += 1
            elif roll < 0.6:
                page.silent = True
                operations["go silent"] += 1
            elif page.host and roll < 0.8 and page.peers:
                await page.send({"type": "kick", "id": chance.choice(list(page.peers))})
                operations["kick"] += 1
            elif page.host and roll < 0.85:
                await page.send({"type": "end"})
                operations["end"] += 1
            else:
                await page.send(
                    {
                        "type": "state",
                        "state": {
                            "audio": chance.random() < 0.5,
                            "video": True,
                            "screen": False,
                            "hand": chance.random() < 0.2,
                        },
                    }
                )
                operations["state"] += 1
            await asyncio.sleep(chance.uniform(0, 0.05))

        # Silent pages are closed by the server within the TTL; then everything must agree.
        await asyncio.sleep(PRESENCE_TTL + 2)
        for page in pages + hosts:
            if page.silent or not page.connected:
                await page.stop_tasks()
        print("soak operations:", dict(operations), "total", sum(operations.values()))

        for room in world["rooms"]:
            slug = room["slug"]
            connected = [page for page in pages + hosts if page.slug == slug and page.connected]
            names = sorted(page.name for page in connected)
            # In threads: the pages must go on pinging meanwhile, or the server rightly drops them.
            in_presence = await asyncio.to_thread(
                site.run,
                f"from rooms import live\nprint(json.dumps(live.participant_names({slug!r})))",
            )
            assert in_presence == names, slug
            people = await asyncio.to_thread(people_in_call, ports[0], slug, room["host"])
            assert sorted(people) == names, slug
            attendance = await asyncio.to_thread(
                site.run,
                "from rooms.models import Attendance\n"
                "print(json.dumps(sorted(a.name for a in Attendance.objects.filter("
                f"room__slug={slug!r}, left_at=None))))",
            )
            assert attendance == names, slug
            ids = {page.id: page.name for page in connected}
            for page in connected:
                others = {peer_id: name for peer_id, name in ids.items() if peer_id != page.id}
                assert page.peers == others, (slug, page.name)
        assert operations["kick"] and operations["end"] and operations["drop without close"]
        assert sum(operations.values()) > 300
        for port in ports:
            site.assert_no_crash(port)
        for page in pages + hosts:
            if page.connected:
                await page.leave()
    finally:
        site.stop_all()
