"""
The site's connection to Janus (rooms.janus), against a real Janus started by the test.

What the SFU rooms will stand on: only a client with the API secret gets in; a VideoRoom room made
with a secret cannot be destroyed without it; and every way our side goes (a session destroyed, or
the connection dropped) leaves no session behind in Janus.
"""

import asyncio

import pytest

from rooms.janus import Janus, JanusError

VIDEOROOM = "janus.plugin.videoroom"


async def connect(janus_server) -> Janus:
    return await Janus.connect(janus_server.url, secret=janus_server.api_secret)


async def sessions_in(janus_server) -> list[int]:
    admin = await Janus.connect(
        janus_server.admin_url, secret=janus_server.admin_secret, admin=True
    )
    try:
        return (await admin.request({"janus": "list_sessions"}))["sessions"]
    finally:
        await admin.close()


async def until_no_sessions(janus_server, seconds: float = 5) -> list[int]:
    """Return Janus's sessions once there are none; fail (time out) if some stay."""
    async with asyncio.timeout(seconds):
        while True:
            sessions = await sessions_in(janus_server)
            if not sessions:
                return sessions
            await asyncio.sleep(0.1)


async def test_a_client_without_the_api_secret_is_refused(janus_server):
    stranger = await Janus.connect(janus_server.url, secret="guessed")
    try:
        with pytest.raises(JanusError) as refusal:
            await stranger.session()
        assert refusal.value.code == 403
    finally:
        await stranger.close()


async def test_a_room_made_with_a_secret_is_destroyed_only_with_it(janus_server):
    janus = await connect(janus_server)
    session = await janus.session()
    handle = await session.attach(VIDEOROOM)

    made = await handle.message(
        {"request": "create", "room": 4242, "secret": "room-secret", "is_private": True}
    )
    assert made["videoroom"] == "created"
    assert (await handle.message({"request": "exists", "room": 4242}))["exists"] is True
    listed = await handle.message({"request": "list"})
    assert 4242 not in [room["room"] for room in listed["list"]]  # private: not listed

    with pytest.raises(JanusError) as refusal:
        await handle.message({"request": "destroy", "room": 4242, "secret": "wrong"})
    assert refusal.value.code == 433  # JANUS_VIDEOROOM_ERROR_UNAUTHORIZED
    assert (await handle.message({"request": "exists", "room": 4242}))["exists"] is True

    await handle.message({"request": "destroy", "room": 4242, "secret": "room-secret"})
    assert (await handle.message({"request": "exists", "room": 4242}))["exists"] is False
    await session.destroy()
    await janus.close()


async def test_a_destroyed_session_is_gone_from_janus(janus_server):
    janus = await connect(janus_server)
    session = await janus.session()
    await session.attach(VIDEOROOM)
    assert session.id in await sessions_in(janus_server)

    await session.destroy()

    assert await until_no_sessions(janus_server) == []
    await janus.close()


async def test_a_dropped_connection_leaves_no_session_behind(janus_server):
    janus = await connect(janus_server)
    session = await janus.session()
    handle = await session.attach(VIDEOROOM)
    assert session.id in await sessions_in(janus_server)

    janus.socket.transport.abort()  # the TCP connection goes, with no close frame

    assert await until_no_sessions(janus_server) == []
    event = await asyncio.wait_for(handle.events.get(), 5)
    assert event == {"janus": "detached", "reason": "connection lost"}
    with pytest.raises(ConnectionError):
        await session.request({"janus": "keepalive"})
