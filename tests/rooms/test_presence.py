"""Presence, in process and in Redis: places, ghosts and state behave the same in both."""

import asyncio
import uuid

import pytest

from rooms.presence import MemoryPresence, RedisPresence


@pytest.fixture(params=["memory", "redis"])
def presence(request):
    if request.param == "memory":
        return MemoryPresence()
    server = request.getfixturevalue("redis_server")
    return RedisPresence(server.url, f"test-{uuid.uuid4().hex[:8]}")


def entry(peer_id: str, **fields) -> dict:
    return {
        "id": peer_id,
        "name": peer_id.title(),
        "role": "participant",
        "state": {"audio": True, "video": True, "screen": False, "hand": False},
        "channel": f"channel-{peer_id}",
        "user_id": None,
        "guest_id": None,
        "attendance_id": None,
        **fields,
    }


async def test_admission_stops_at_the_limit_and_lists_those_already_in(presence):
    assert await presence.admit("r", entry("a"), limit=2) == []
    others = await presence.admit("r", entry("b"), limit=2)
    assert [other["id"] for other in others] == ["a"]

    assert await presence.admit("r", entry("c"), limit=2) is None
    assert await asyncio.to_thread(presence.count, "r") == 2
    await presence.remove("r", "a")
    assert [other["id"] for other in await presence.admit("r", entry("c"), limit=2)] == ["b"]


async def test_concurrent_admissions_never_exceed_the_limit(presence):
    results = await asyncio.gather(
        *(presence.admit("r", entry(f"p{n}"), limit=3) for n in range(10))
    )

    assert sum(result is not None for result in results) == 3
    assert await asyncio.to_thread(presence.count, "r") == 3


async def test_a_removal_hands_the_entry_to_one_caller_only(presence):
    await presence.admit("r", entry("a"), limit=5)

    first, second = await asyncio.gather(presence.remove("r", "a"), presence.remove("r", "a"))

    assert [first is None, second is None].count(True) == 1
    assert (first or second)["admitted"] is True


async def test_the_lobby_is_kept_apart_and_admission_moves_out_of_it(presence):
    await presence.wait("r", entry("w"))
    assert [waiting["id"] for waiting in await presence.lobby("r")] == ["w"]
    assert await asyncio.to_thread(presence.count, "r") == 0

    await presence.admit("r", entry("w"), limit=5)

    assert await presence.lobby("r") == []
    assert await asyncio.to_thread(presence.count, "r") == 1


async def test_entries_nobody_refreshes_are_swept_out_once(presence):
    await presence.admit("r", entry("alive"), limit=5)
    await presence.admit("r", entry("ghost", attendance_id=7), limit=5)
    await asyncio.sleep(0.3)
    await presence.touch("r", "alive")

    swept = await presence.sweep("r", older_than=0.2)

    assert [(ghost["id"], ghost["attendance_id"]) for ghost in swept] == [("ghost", 7)]
    assert await presence.sweep("r", older_than=0.2) == []
    assert await asyncio.to_thread(presence.count, "r") == 1


async def test_an_update_rewrites_an_entry_but_never_brings_one_back(presence):
    peer = entry("a")
    await presence.admit("r", peer, limit=5)
    peer["state"] = {"audio": False, "video": False, "screen": True, "hand": True}
    await presence.update("r", peer)
    (listed,) = await presence.admit("r", entry("b"), limit=5)
    assert listed["state"] == peer["state"]

    await presence.remove("r", "a")
    await presence.update("r", peer)

    assert await asyncio.to_thread(presence.count, "r") == 1
