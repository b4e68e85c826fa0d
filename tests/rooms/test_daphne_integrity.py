"""
Call integrity against the real daphne, with outside clients that speak only docs/signaling.md:
clients that answer a close late, a Redis that restarts mid-call, and a daphne process killed
while a page reconnects.
"""

import asyncio

import pytest

from tests.conftest import RedisServer
from tests.live_site import LiveSite, people_in_call, seed_call
from tests.signaling_client import SignalingClient

OFFER = {"description": {"type": "offer", "sdp": "v=0\r\n"}}


def open_attendance(site: LiveSite) -> list[str]:
    return site.run(
        "from rooms.models import Attendance\n"
        "print(json.dumps(sorted(a.name for a in Attendance.objects.filter(left_at=None))))"
    )


async def test_an_end_leaves_no_ghost_when_clients_answer_the_close_late(tmp_path):
    """A host ends a call of six whose participants answer the close frame 100 ms late."""
    names = ["ann", "ben", "cid", "dee", "eve"]
    site = LiveSite(tmp_path)
    try:
        call = seed_call(site, *names)
        port = site.start()
        for _round in range(3):
            olga = await SignalingClient.join(port, call["slug"], call["sessions"]["olga"])
            others = [
                await SignalingClient.join(
                    port, call["slug"], call["sessions"][name], late_closer=True
                )
                for name in names
            ]
            for other in others:
                await other.send(
                    {
                        "type": "state",
                        "state": {"audio": False, "video": True, "screen": False, "hand": False},
                    }
                )

            await olga.send({"type": "end"})

            for client in [olga, *others]:
                assert await client.closed_with() == 4410
            await asyncio.sleep(0.5)
            assert people_in_call(port, call["slug"], call["sessions"]["olga"]) == []
            assert open_attendance(site) == []
        # The host starts it again and finds nobody there.
        again = await SignalingClient.join(port, call["slug"], call["sessions"]["olga"])
        assert again.welcome["peers"] == []
        await again.close()
        site.assert_no_crash(port)
    finally:
        site.stop_all()


@pytest.fixture
def restartable_redis():
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.mark.slow
async def test_a_redis_restart_costs_nobody_their_connection(tmp_path, restartable_redis):
    site = LiveSite(tmp_path, redis_url=restartable_redis.url, SIGNALING_PRESENCE_TTL="6")
    try:
        call = seed_call(site, "ann", "ben")
        first, second = site.start(), site.start()
        olga = await SignalingClient.join(first, call["slug"], call["sessions"]["olga"])
        ann = await SignalingClient.join(second, call["slug"], call["sessions"]["ann"])
        pingers = [olga.keep_alive(), ann.keep_alive()]
        assert (await olga.receive_type("peer-joined"))["peer"]["id"] == ann.id

        restartable_redis.stop()  # and with it every key: presence, subscriptions
        assert await olga.still_answers()  # pings need no Redis
        await olga.send({"type": "signal", "to": ann.id, "data": OFFER})
        await asyncio.sleep(1)
        restartable_redis.start()

        # The signal sent during the outage arrives once Redis is back.
        relayed = await ann.receive_type("signal", timeout=20)
        assert relayed == {"type": "signal", "from": olga.id, "data": OFFER}
        await asyncio.sleep(2)  # a refresh of each process restores its entries
        count = site.run(
            f"from rooms import live\nprint(json.dumps(live.participant_names({call['slug']!r})))"
        )
        assert count == ["Ann", "Olga"]
        ben = await SignalingClient.join(first, call["slug"], call["sessions"]["ben"])
        assert sorted(peer["id"] for peer in ben.welcome["peers"]) == sorted([olga.id, ann.id])
        assert (await olga.receive_type("peer-joined"))["peer"]["id"] == ben.id
        assert (await ann.receive_type("peer-joined"))["peer"]["id"] == ben.id
        await ann.send({"type": "signal", "to": ben.id, "data": OFFER})
        assert (await ben.receive_type("signal"))["from"] == ann.id
        for client in (olga, ann):
            assert client.websocket.close_code is None
            assert await client.still_answers()
        for pinger in pingers:
            pinger.cancel()
        for client in (olga, ann, ben):
            await client.close()
        for port in (first, second):
            site.assert_no_crash(port)  # nor a traceback for each retry while Redis was away
    finally:
        site.stop_all()


@pytest.mark.slow
async def test_a_page_reconnecting_after_its_process_died_is_let_into_its_full_call(
    tmp_path, redis_server
):
    site = LiveSite(tmp_path, redis_url=redis_server.url)
    try:
        call = seed_call(site, "ann")
        site.run(
            "from rooms.models import Room\n"
            f"Room.objects.filter(slug={call['slug']!r}).update(max_participants=2)\n"
            "print(json.dumps(True))"
        )
        first, second = site.start(), site.start()
        olga = await SignalingClient.join(first, call["slug"], call["sessions"]["olga"])
        ann = await SignalingClient.join(
            second, call["slug"], call["sessions"]["ann"], instance="page-of-ann-0001"
        )
        await olga.receive_type("peer-joined")

        site.kill(second)
        again = await SignalingClient.join(
            first, call["slug"], call["sessions"]["ann"], instance="page-of-ann-0001"
        )

        assert [peer["id"] for peer in again.welcome["peers"]] == [olga.id]
        assert again.welcome["self"]["instance"] == ann.welcome["self"]["instance"]
        assert await olga.receive_type("peer-left") == {
            "type": "peer-left",
            "id": ann.id,
            "reason": "lost",
        }
        joined = await olga.receive_type("peer-joined")
        assert (joined["peer"]["id"], joined["peer"]["instance"]) == (
            again.id,
            ann.welcome["self"]["instance"],
        )
        assert open_attendance(site) == ["Ann", "Olga"]
        await again.close()
        await olga.close()
        site.assert_no_crash(first)
    finally:
        site.stop_all()
