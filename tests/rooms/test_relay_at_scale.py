"""
Correctness under load, through the real ASGI stack: every signal arrives exactly once, in order
per sender, at its addressee only, on the in-process layer and on Redis; and a room's signals
never reach another room while hundreds of other sockets are connected. Time is measured by
bench/, not here.
"""

import asyncio
import collections
import uuid

import pytest
from channels.db import database_sync_to_async
from django.conf import settings as django_settings

from conference.settings import redis_channel_layer
from rooms import services
from tests.factories import UserFactory
from tests.rooms.signaling_helpers import Peer, session_cookie_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def patient_presence(settings):
    """Nobody pings here: keep the earliest sockets from timing out while the rest connect."""
    settings.SIGNALING_PRESENCE_TTL = 600


@pytest.fixture(params=["in-process", "redis"])
def layer(request, settings):
    if request.param == "redis":
        url = request.getfixturevalue("redis_server").url
        settings.REDIS_URL = url
        settings.REDIS_PREFIX = f"test-{uuid.uuid4().hex[:8]}"
        settings.CHANNEL_LAYERS = {"default": redis_channel_layer(url, settings.REDIS_PREFIX)}
    return request.param


@database_sync_to_async
def members_rooms(count: int, people: int):
    """Return `count` rooms open to members, and the cookies of `people` signed-in users."""
    owner = UserFactory()
    rooms = [
        services.room_create(owner=owner, name=f"Room {n}", access="members", max_participants=12)
        for n in range(count)
    ]
    return rooms, [UserFactory() for _ in range(people)]


async def connect_all(rooms, users, per_room: int) -> dict[str, list[Peer]]:
    """Connect `per_room` sockets to each room, one per user; return them by room slug."""
    cookies = [await session_cookie_for(user) for user in users[:per_room]]
    joined = {}
    for room in rooms:
        joined[room.slug] = [await Peer.join(room.slug, cookie=cookie) for cookie in cookies]
    await asyncio.sleep(0.5)  # the presence of those who came later, on its way
    for peers in joined.values():
        for peer in peers:
            await peer.take_sent()
    return joined


def numbered(sequence: int) -> dict:
    return {"candidate": {"candidate": f"candidate:{sequence} 1 udp 1 192.0.2.1 9 typ host"}}


async def test_two_thousand_signals_arrive_exactly_once_in_order_to_their_addressee(layer):
    """50 pairs in 10 rooms of 10; each person sends 20 signals to the other of its pair."""
    rooms, users = await members_rooms(10, 10)
    joined = await connect_all(rooms, users, per_room=10)
    pairs = [
        (peers[index], peers[index + 1]) for peers in joined.values() for index in range(0, 10, 2)
    ]
    assert len(pairs) == 50

    async def send_all(sender: Peer, receiver: Peer):
        for sequence in range(20):
            await sender.send({"type": "signal", "to": receiver.id, "data": numbered(sequence)})

    await asyncio.gather(*(send_all(a, b) for a, b in pairs), *(send_all(b, a) for a, b in pairs))

    everyone = [peer for peers in joined.values() for peer in peers]
    received: dict[str, list] = collections.defaultdict(list)
    async with asyncio.timeout(30):
        while sum(len(messages) for messages in received.values()) < 2000:
            await asyncio.sleep(0.05)
            for peer in everyone:
                for message in await peer.take_sent():
                    assert message["type"] == "signal", message
                    received[peer.id].append((message["from"], message["data"]))
    await asyncio.sleep(0.5)  # anything more would be a duplicate or a stray
    assert [await peer.take_sent() for peer in everyone] == [[]] * len(everyone)
    for a, b in pairs:
        assert received[b.id] == [(a.id, numbered(sequence)) for sequence in range(20)]
        assert received[a.id] == [(b.id, numbered(sequence)) for sequence in range(20)]
    assert sum(len(messages) for messages in received.values()) == 2000
    await asyncio.gather(*(peer.leave() for peer in everyone))


async def test_a_rooms_signals_never_reach_another_room_among_500_other_sockets():
    rooms, users = await members_rooms(51, 10)
    joined = await connect_all(rooms, users, per_room=10)
    watched, *others = rooms
    speakers = joined[watched.slug]
    bystanders = [peer for room in others for peer in joined[room.slug]]
    assert len(bystanders) == 500

    for index, speaker in enumerate(speakers):
        listener = speakers[(index + 1) % len(speakers)]
        await speaker.send({"type": "signal", "to": listener.id, "data": numbered(index)})
        # Also to a peer of another room, which the protocol drops.
        stranger = bystanders[index * 37 % len(bystanders)]
        await speaker.send({"type": "signal", "to": stranger.id, "data": numbered(index)})
        await speaker.send(
            {
                "type": "state",
                "state": {"audio": False, "video": True, "screen": False, "hand": False},
            }
        )

    await asyncio.sleep(0.5)
    for index, listener in enumerate(speakers):
        messages = await listener.take_sent()
        signals = [m for m in messages if m["type"] == "signal"]
        sender = speakers[(index - 1) % len(speakers)]
        assert signals == [
            {"type": "signal", "from": sender.id, "data": numbered((index - 1) % len(speakers))}
        ]
        assert {m["id"] for m in messages if m["type"] == "peer-state"} == {
            peer.id for peer in speakers if peer is not listener
        }
    for bystander in bystanders:
        assert await bystander.communicator.receive_nothing(0)
    assert django_settings.CHANNEL_LAYERS["default"]["BACKEND"].endswith("InProcessChannelLayer")
    await asyncio.gather(*(peer.leave() for peer in [*speakers, *bystanders]))
