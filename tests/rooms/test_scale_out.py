"""Two daphne processes sharing a real Redis: one call across both, and a process that dies."""

import asyncio
import time

import pytest

from bench.sfu_room import SfuClient, camera_pictures, everyone_decodes, until
from tests.live_site import LiveSite, seed_call
from tests.signaling_client import SignalingClient

pytestmark = pytest.mark.slow

OFFER = {"description": {"type": "offer", "sdp": "v=0\r\n"}}
ANSWER = {"description": {"type": "answer", "sdp": "v=0\r\n"}}


@pytest.fixture
def site(tmp_path, redis_server):
    site = LiveSite(tmp_path, redis_url=redis_server.url)
    yield site
    site.stop_all()


async def keep_alive(client: SignalingClient, stop: asyncio.Event):
    while not stop.is_set():
        await client.send({"type": "ping"})
        await asyncio.sleep(5)


async def test_a_call_spans_two_processes_and_forgets_a_dead_one(site):
    call = seed_call(site, "ann")
    first, second = site.start(), site.start()

    olga = await SignalingClient.join(first, call["slug"], call["sessions"]["olga"])
    ann = await SignalingClient.join(second, call["slug"], call["sessions"]["ann"])

    assert olga.welcome["peers"] == []
    (seen,) = ann.welcome["peers"]
    assert seen == {
        "id": olga.id,
        "name": "Olga",
        "role": "host",
        "state": {"audio": True, "video": True, "screen": False, "hand": False},
        "instance": seen["instance"],
    }
    joined = await olga.receive_type("peer-joined")
    assert joined["peer"]["id"] == ann.id

    await ann.send({"type": "signal", "to": olga.id, "data": OFFER})
    assert await olga.receive_type("signal") == {"type": "signal", "from": ann.id, "data": OFFER}
    await olga.send({"type": "signal", "to": ann.id, "data": ANSWER})
    assert await ann.receive_type("signal") == {"type": "signal", "from": olga.id, "data": ANSWER}
    state = {"audio": False, "video": False, "screen": False, "hand": True}
    await ann.send({"type": "state", "state": state})
    assert await olga.receive_type("peer-state") == {
        "type": "peer-state",
        "id": ann.id,
        "state": state,
    }

    stop = asyncio.Event()
    pinger = asyncio.create_task(keep_alive(olga, stop))
    site.kill(second)
    killed_at = time.monotonic()
    left = await olga.receive_type("peer-left", timeout=40)
    noticed_after = time.monotonic() - killed_at
    stop.set()
    await pinger

    assert left == {"type": "peer-left", "id": ann.id, "reason": "lost"}
    assert noticed_after < 30, f"a dead process's peer was reported after {noticed_after:.0f} s"
    attendance = site.run(
        "from rooms.models import Attendance\n"
        "print(json.dumps([a.left_at is not None for a in Attendance.objects.filter(name='Ann')]))"
    )
    assert attendance == [True]
    await olga.close()


async def test_an_idle_call_on_redis_stays_connected_for_a_minute(site):
    """Only the client's keepalive for a minute: the consumer's channel-layer read stays idle."""
    call = seed_call(site, "ann")
    port = site.start()
    olga = await SignalingClient.join(port, call["slug"], call["sessions"]["olga"])

    stop = asyncio.Event()
    pinger = asyncio.create_task(keep_alive(olga, stop))
    await asyncio.sleep(60)
    stop.set()
    await pinger

    assert olga.websocket.close_code is None
    ann = await SignalingClient.join(port, call["slug"], call["sessions"]["ann"])
    joined = await olga.receive_type("peer-joined")
    assert joined["peer"]["id"] == ann.id
    assert "Timeout reading" not in site.log(port)
    assert "1011" not in site.log(port)
    await ann.close()
    await olga.close()


async def test_two_clients_talk_through_one_process_without_redis(tmp_path):
    site = LiveSite(tmp_path)
    try:
        call = seed_call(site, "ann")
        port = site.start()
        olga = await SignalingClient.join(port, call["slug"], call["sessions"]["olga"])
        ann = await SignalingClient.join(port, call["slug"], call["sessions"]["ann"])

        assert [peer["id"] for peer in ann.welcome["peers"]] == [olga.id]
        assert (await olga.receive_type("peer-joined"))["peer"]["id"] == ann.id
        await ann.send({"type": "signal", "to": olga.id, "data": OFFER})
        assert await olga.receive_type("signal") == {
            "type": "signal",
            "from": ann.id,
            "data": OFFER,
        }
        await olga.send({"type": "signal", "to": ann.id, "data": ANSWER})
        assert await ann.receive_type("signal") == {
            "type": "signal",
            "from": olga.id,
            "data": ANSWER,
        }
        await ann.close()
        assert await olga.receive_type("peer-left") == {
            "type": "peer-left",
            "id": ann.id,
            "reason": "left",
        }
        await olga.close()
    finally:
        site.stop_all()


async def test_a_call_through_the_media_server_spans_two_processes(
    tmp_path, redis_server, janus_server
):
    site = LiveSite(
        tmp_path,
        redis_url=redis_server.url,
        JANUS_URL=janus_server.url,
        JANUS_API_SECRET=janus_server.api_secret,
    )
    clients = []
    try:
        call = seed_call(site, "ann", media="sfu")
        first, second = site.start(), site.start()
        pictures = camera_pictures(frames=10)
        for port, name in ((first, "olga"), (second, "ann")):
            client = await SfuClient.join(port, call["slug"], call["sessions"][name], pictures)
            clients.append(client)
            await client.publish()

        assert await until(lambda: everyone_decodes(clients, at_least=30), 30)
        media = site.run(
            f"from rooms import live\nprint(json.dumps(live.call_media({call['slug']!r})))"
        )
        assert (media["mode"], media["server"]) == ("sfu", janus_server.url)
    finally:
        for client in clients:
            await client.close()
        site.stop_all()
