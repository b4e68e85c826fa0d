"""Presence, in process and in Redis: places, ghosts and state behave the same in both."""

import asyncio
import uuid

import pytest

from rooms.presence import MemoryPresence, RedisPresence


@pytest.fixture(params=["memory", "redis"])
def presence(request, settings):
    settings.SIGNALING_PRESENCE_TTL = 0.4  # entries go stale after 0.2 s
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
        "instance": f"page-of-{peer_id}",
        "channel": f"channel-{peer_id}",
        "user_id": None,
        "guest_id": None,
        "browser": "",
        **fields,
    }


def ids(entries) -> list[str]:
    return sorted(entry["id"] for entry in entries)


async def count(presence) -> int:
    return await asyncio.to_thread(presence.count, "r")


async def test_admission_stops_at_the_limit_and_lists_those_already_in(presence):
    assert (await presence.admit("r", entry("a"), limit=2)).others == []
    admission = await presence.admit("r", entry("b"), limit=2)
    assert ids(admission.others) == ["a"]
    assert admission.departed == []

    assert await presence.admit("r", entry("c"), limit=2) is None
    assert await count(presence) == 2
    assert await presence.remove("r", "a") is True
    assert ids((await presence.admit("r", entry("c"), limit=2)).others) == ["b"]


async def test_concurrent_admissions_never_exceed_the_limit(presence):
    results = await asyncio.gather(
        *(presence.admit("r", entry(f"p{n}"), limit=3) for n in range(10))
    )

    assert sum(result is not None for result in results) == 3
    assert await count(presence) == 3


async def test_a_removal_is_made_by_one_caller_only(presence):
    await presence.admit("r", entry("a"), limit=5)

    first, second = await asyncio.gather(presence.remove("r", "a"), presence.remove("r", "a"))

    assert sorted([first, second]) == [False, True]
    assert await count(presence) == 0


async def test_the_lobby_is_kept_apart_and_admission_moves_out_of_it(presence):
    assert await presence.wait("r", entry("w")) == []
    assert ids(await presence.lobby("r")) == ["w"]
    assert await count(presence) == 0

    await presence.admit("r", entry("w"), limit=5)

    assert await presence.lobby("r") == []
    assert await count(presence) == 1


async def test_a_page_connecting_again_takes_the_place_of_its_older_connection(presence):
    """The reconnection of a full call's member is let in, and its old connection leaves once."""
    await presence.admit("r", entry("a"), limit=2)
    await presence.admit("r", entry("old", instance="page-1", name="Old"), limit=2)

    admission = await presence.admit("r", entry("new", instance="page-1"), limit=2)

    assert ids(admission.others) == ["a"]
    assert [(gone["id"], gone["name"]) for gone in admission.departed] == [("old", "Old")]
    assert await count(presence) == 2
    assert await presence.remove("r", "old") is False  # already out, and reported by the newcomer


async def test_only_a_page_that_was_in_the_call_skips_the_lobby(presence):
    await presence.admit("r", entry("old", instance="page-1"), limit=5)

    assert (
        await presence.admit("r", entry("x", instance="page-2"), limit=5, returning_only=True)
        is None
    )
    back = await presence.admit("r", entry("new", instance="page-1"), limit=5, returning_only=True)

    assert ids(back.departed) == ["old"]
    assert ids(await presence.lobby("r")) == []


async def test_a_page_waiting_again_replaces_its_older_lobby_connection(presence):
    await presence.wait("r", entry("old", instance="page-1"))

    departed = await presence.wait("r", entry("new", instance="page-1"))

    assert ids(departed) == ["old"]
    assert ids(await presence.lobby("r")) == ["new"]


async def test_entries_nobody_vouches_for_are_swept_out_once(presence):
    alive = entry("alive")
    await presence.admit("r", alive, limit=5)
    await presence.admit("r", entry("ghost", name="Ghost"), limit=5)
    await asyncio.sleep(0.3)

    swept = await presence.refresh("r", [alive])

    assert [(ghost["id"], ghost["name"]) for ghost in swept] == [("ghost", "Ghost")]
    assert await presence.refresh("r", [alive]) == []
    assert await count(presence) == 1
    assert await presence.remove("r", "ghost") is False


async def test_a_newcomer_clears_out_stale_entries_before_counting_places(presence):
    await presence.admit("r", entry("ghost"), limit=1)
    await asyncio.sleep(0.3)

    admission = await presence.admit("r", entry("new"), limit=1)

    assert admission.others == []
    assert ids(admission.departed) == ["ghost"]


async def test_an_update_rewrites_an_entry_but_never_brings_one_back(presence):
    peer = entry("a")
    await presence.admit("r", peer, limit=5)
    peer["state"] = {"audio": False, "video": False, "screen": True, "hand": True}
    await presence.update("r", peer)
    (listed,) = (await presence.admit("r", entry("b"), limit=5)).others
    assert listed["state"] == peer["state"]

    await presence.remove("r", "a")
    await presence.update("r", peer)

    assert await count(presence) == 1


async def test_a_refresh_never_brings_back_a_removed_entry(presence):
    peer = entry("a")
    await presence.admit("r", peer, limit=5)
    await presence.remove("r", "a")

    await presence.refresh("r", [peer])

    assert await count(presence) == 0


async def test_a_refresh_restores_what_a_restarted_redis_lost(redis_server):
    presence = RedisPresence(redis_server.url, f"test-{uuid.uuid4().hex[:8]}")
    peer, waiting = entry("a"), entry("w")
    await presence.admit("r", peer, limit=5)
    await presence.wait("r", waiting)
    await presence.client().delete(*presence.keys("r"))  # what a restart without persistence does

    assert await presence.refresh("r", [peer, waiting]) == []

    assert await count(presence) == 1
    assert ids(await presence.lobby("r")) == ["w"]
    # Lost without a trace, so whoever removes it now is the one to report it.
    await presence.client().delete(*presence.keys("r"))
    assert await presence.remove("r", "a") is True


async def test_names_are_listed_for_the_people_endpoint(presence):
    await presence.admit("r", entry("bo"), limit=5)
    await presence.admit("r", entry("al"), limit=5)
    await presence.wait("r", entry("wa"))

    assert await asyncio.to_thread(presence.names, "r") == ["Al", "Bo"]


async def test_a_call_s_media_record_is_set_once_moved_by_generation_and_goes_with_the_call(
    presence,
):
    first = {"mode": "sfu", "server": "ws://a", "generation": 1}
    assert await presence.set_media("r", first) is None  # nobody is in the call
    await presence.admit("r", entry("a"), limit=5)

    assert await presence.set_media("r", first) == first
    # Two processes moving the call at once: the first one wins, the other gets its record.
    assert await presence.set_media("r", dict(first, server="ws://b")) == first
    moved = {"mode": "sfu", "server": "ws://b", "generation": 2}
    assert await presence.set_media("r", moved, replacing=1) == moved
    stale = {"mode": "sfu", "server": "ws://c", "generation": 2}
    assert await presence.set_media("r", stale, replacing=1) == moved
    assert await presence.media("r") == moved
    assert await asyncio.to_thread(presence.media_now, "r") == moved

    await presence.remove("r", "a")

    assert await presence.media("r") is None  # the next call starts peer-to-peer again
