"""The signaling consumer over a real connection: exact payloads, and who receives nothing."""

import asyncio
import datetime as dt
import json

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.utils import timezone

from rooms import live, services, turn
from rooms.models import Attendance, Room
from tests.factories import MeetingFactory
from tests.rooms.signaling_helpers import Peer

pytestmark = pytest.mark.django_db(transaction=True)

DEFAULT_STATE = {"audio": True, "video": True, "screen": False, "hand": False}
OFFER = {"description": {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}}
CANDIDATE = {
    "candidate": {
        "candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
        "usernameFragment": "abcd",
    }
}


async def join(call, user, **kwargs):
    return await Peer.join(call.room.slug, user=user, **kwargs)


# --- Welcome and presence ---------------------------------------------------------------------


async def test_the_first_peer_is_welcomed_into_an_empty_call(call):
    olga = await join(call, call.owner)

    assert olga.welcome == {
        "type": "welcome",
        "protocol": 1,
        "self": {"id": olga.id, "name": "Olga", "role": "host", "instance": olga.instance},
        "peers": [],
        "iceServers": [],
        "room": {"slug": call.room.slug, "name": "Standup", "locked": False},
    }
    await olga.leave()


async def test_a_newcomer_is_welcomed_with_the_peers_and_they_are_told(call):
    olga = await join(call, call.owner)
    ann = await join(call, call.ann)

    assert ann.welcome["self"] == {
        "id": ann.id,
        "name": "Ann",
        "role": "participant",
        "instance": ann.instance,
    }
    assert ann.welcome["peers"] == [
        {
            "id": olga.id,
            "name": "Olga",
            "role": "host",
            "state": DEFAULT_STATE,
            "instance": olga.instance,
        }
    ]
    assert await olga.receive() == {
        "type": "peer-joined",
        "peer": {
            "id": ann.id,
            "name": "Ann",
            "role": "participant",
            "state": DEFAULT_STATE,
            "instance": ann.instance,
        },
    }
    assert olga.id != ann.id
    await ann.leave()
    assert await olga.receive() == {"type": "peer-left", "id": ann.id, "reason": "left"}
    await olga.leave()


async def test_peer_ids_are_new_for_every_connection_and_a_page_keeps_its_instance(call):
    first = await join(call, call.ann, page="page-of-ann-0001")
    await first.leave()
    second = await join(call, call.ann, page="page-of-ann-0001")
    other_tab = await join(call, call.ann, page="page-of-ann-0002")

    assert first.id != second.id
    assert first.instance == second.instance != other_tab.instance
    await second.leave()
    await other_tab.leave()


async def test_a_dropped_connection_is_reported_as_lost_not_left(call):
    olga = await join(call, call.owner)
    ann = await join(call, call.ann)
    await olga.receive_type("peer-joined")

    await ann.communicator.disconnect(code=1006)

    assert await olga.receive() == {"type": "peer-left", "id": ann.id, "reason": "lost"}
    await olga.leave()


async def test_state_reaches_the_other_peers_and_newcomers(call):
    olga = await join(call, call.owner)
    ann = await join(call, call.ann)
    await olga.receive_type("peer-joined")
    state = {"audio": False, "video": True, "screen": True, "hand": True}

    await ann.send({"type": "state", "state": state})

    assert await olga.receive() == {"type": "peer-state", "id": ann.id, "state": state}
    assert await ann.hears_nothing()
    ben = await join(call, call.ben)
    assert {p["id"]: p["state"] for p in ben.welcome["peers"]}[ann.id] == state
    for peer in (olga, ann, ben):
        await peer.leave()


async def test_ping_gets_pong(call):
    ann = await join(call, call.ann)

    await ann.send({"type": "ping"})

    assert await ann.receive() == {"type": "pong"}
    await ann.leave()


# --- Relay ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data", [OFFER, CANDIDATE, {"candidate": None}], ids=["offer", "candidate", "end-of-candidates"]
)
async def test_a_signal_reaches_only_its_addressee(call, data):
    olga = await join(call, call.owner)
    ann = await join(call, call.ann)
    ben = await join(call, call.ben)
    elsewhere = await Peer.join(call.other_room.slug, user=call.owner)
    for peer in (olga, ann):
        await peer.drain()  # presence of the newcomers

    await ben.send({"type": "signal", "to": ann.id, "data": data})

    assert await ann.receive() == {"type": "signal", "from": ben.id, "data": data}
    assert await olga.hears_nothing()
    assert await ben.hears_nothing()
    assert await elsewhere.hears_nothing()
    for peer in (olga, ann, ben, elsewhere):
        await peer.leave()


async def test_an_answer_goes_back_to_a_newcomer_before_its_presence_arrives(call):
    """The relay carries the sender's route, so the reply needs no peer-joined first."""
    olga = await join(call, call.owner)
    ann = await join(call, call.ann)
    await ann.send({"type": "signal", "to": olga.id, "data": OFFER})
    messages = [await olga.receive(), await olga.receive()]
    assert {"type": "signal", "from": ann.id, "data": OFFER} in messages

    answer = {"description": {"type": "answer", "sdp": "v=0\r\n"}}
    await olga.send({"type": "signal", "to": ann.id, "data": answer})

    assert await ann.receive() == {"type": "signal", "from": olga.id, "data": answer}
    await ann.leave()
    await olga.leave()


async def test_the_sender_is_stamped_by_the_server_and_cannot_be_forged(call):
    olga = await join(call, call.owner)
    ann = await join(call, call.ann)
    await olga.receive_type("peer-joined")

    await ann.send({"type": "signal", "to": olga.id, "from": "someone-else", "data": OFFER})

    assert (await olga.receive())["from"] == ann.id
    await ann.leave()
    await olga.leave()


async def test_a_signal_to_a_peer_in_another_room_is_dropped(call):
    ann = await join(call, call.ann)
    elsewhere = await Peer.join(call.other_room.slug, user=call.owner)

    await ann.send({"type": "signal", "to": elsewhere.id, "data": OFFER})

    assert await elsewhere.hears_nothing()
    assert await ann.hears_nothing()
    await ann.leave()
    await elsewhere.leave()


async def test_a_client_cannot_choose_the_channel_layer_event(call):
    olga = await join(call, call.owner)
    ann = await join(call, call.ann)
    await olga.receive_type("peer-joined")

    for event_type in ["room.end", "peer.kick", "room_end", "lobby.admit"]:
        await ann.send({"type": event_type})
        assert (await ann.receive())["code"] == "unknown-type"

    assert await olga.hears_nothing()
    assert await ann.still_answers()
    await ann.leave()
    await olga.leave()


# --- Refusals ---------------------------------------------------------------------------------


async def refusal(slug, **kwargs):
    peer = await Peer.connect(slug, **kwargs)
    return await peer.refused()


async def test_anonymous_is_refused_with_4401(call):
    error, code = await refusal(call.room.slug)

    assert (error["type"], error["code"], code) == ("error", "not-signed-in", 4401)
    assert "Sign in" in error["message"]


async def test_someone_not_invited_is_refused_with_4403(call):
    error, code = await refusal(call.room.slug, user=call.stranger)

    assert (error["code"], code) == ("not-allowed", 4403)
    assert error["message"] == "You are not invited to this room."


async def test_a_missing_room_is_refused_with_4404(call):
    error, code = await refusal("no-such-room", user=call.owner)

    assert (error["code"], code) == ("no-such-room", 4404)


async def test_a_locked_room_refuses_participants_with_4423_but_not_hosts(call):
    await database_sync_to_async(services.room_set_locked)(room=call.room, locked=True)

    error, code = await refusal(call.room.slug, user=call.ann)
    olga = await join(call, call.owner)

    assert (error["code"], code) == ("locked", 4423)
    assert olga.welcome["room"]["locked"] is True
    await olga.leave()


async def test_a_full_room_refuses_with_4409(call):
    await database_sync_to_async(Room.objects.filter(pk=call.room.pk).update)(max_participants=2)
    olga = await join(call, call.owner)
    ann = await join(call, call.ann)

    error, code = await refusal(call.room.slug, user=call.ben)

    assert (error["code"], code) == ("room-full", 4409)
    await ann.leave()
    ben = await join(call, call.ben)  # a place is free again
    await ben.leave()
    await olga.leave()


async def test_too_early_is_refused_with_4425_and_the_opening_time(call):
    starts_at = (timezone.now() + dt.timedelta(days=2)).replace(microsecond=0)
    await database_sync_to_async(MeetingFactory)(room=call.room, starts_at=starts_at)

    error, code = await refusal(call.room.slug, user=call.ann)

    assert (error["code"], code) == ("too-early", 4425)
    opens_at = dt.datetime.fromisoformat(error["opensAt"])
    assert opens_at == starts_at - dt.timedelta(minutes=10)


async def test_a_kicked_user_is_refused_with_4403(call):
    await database_sync_to_async(services.ban_create)(room=call.room, user=call.ann)

    error, code = await refusal(call.room.slug, user=call.ann)

    assert (error["code"], code) == ("kicked", 4403)


async def test_a_wrong_origin_is_refused_with_4403(call):
    error, code = await refusal(call.room.slug, user=call.owner, origin=b"https://evil.example")

    assert (error["code"], code) == ("origin-not-allowed", 4403)


async def test_a_finished_meeting_is_refused_with_4410(call):
    starts_at = timezone.now() - dt.timedelta(hours=3)
    await database_sync_to_async(MeetingFactory)(room=call.room, starts_at=starts_at)

    error, code = await refusal(call.room.slug, user=call.ann)

    assert (error["code"], code) == ("meeting-over", 4410)


# --- Lobby ------------------------------------------------------------------------------------


async def test_a_lobby_entrant_learns_nothing_until_admitted(lobby_call):
    call = lobby_call
    olga = await join(call, call.owner)
    ann = await join(call, call.ann)
    await olga.receive_type("peer-joined")

    gail = await Peer.connect(call.room.slug, guest=call.gail)
    lobby = await gail.receive()
    knock = await olga.receive()

    assert lobby["type"] == "lobby"
    assert knock == {"type": "knock", "peer": {"id": knock["peer"]["id"], "name": "Gail"}}
    assert await ann.hears_nothing()  # participants are not told who waits
    gail_id = knock["peer"]["id"]
    await ann.send({"type": "signal", "to": gail_id, "data": OFFER})
    await ann.send({"type": "state", "state": DEFAULT_STATE | {"hand": True}})
    assert (await olga.receive())["type"] == "peer-state"
    assert await gail.hears_nothing()
    await gail.send({"type": "signal", "to": olga.id, "data": OFFER})
    assert (await gail.receive())["code"] == "not-admitted"
    assert await gail.still_answers()

    await olga.send({"type": "admit", "id": gail_id})

    welcome = await gail.receive()
    assert welcome["type"] == "welcome"
    assert welcome["self"] == {
        "id": gail_id,
        "name": "Gail",
        "role": "participant",
        "instance": gail.instance,
    }
    assert {peer["id"] for peer in welcome["peers"]} == {olga.id, ann.id}
    assert await olga.receive() == {
        "type": "peer-joined",
        "peer": {
            "id": gail_id,
            "name": "Gail",
            "role": "participant",
            "state": DEFAULT_STATE,
            "instance": gail.instance,
        },
    }
    assert await olga.receive() == {"type": "lobby-left", "id": gail_id}
    for peer in (olga, ann, gail):
        await peer.leave()


async def test_a_denied_entrant_is_closed_with_4403(lobby_call):
    call = lobby_call
    olga = await join(call, call.owner)
    gail = await Peer.connect(call.room.slug, guest=call.gail)
    await gail.receive()
    knock = await olga.receive()

    await olga.send({"type": "deny", "id": knock["peer"]["id"]})

    error, code = await gail.refused()
    assert (error["code"], code) == ("denied", 4403)
    await gail.leave()
    assert await olga.receive() == {"type": "lobby-left", "id": knock["peer"]["id"]}
    await olga.leave()


async def test_a_host_who_arrives_later_hears_who_is_waiting(lobby_call):
    call = lobby_call
    gail = await Peer.connect(call.room.slug, guest=call.gail)
    assert (await gail.receive())["type"] == "lobby"

    olga = await join(call, call.owner)
    knock = await olga.receive()

    assert knock["type"] == "knock"
    assert knock["peer"]["name"] == "Gail"
    await olga.send({"type": "admit", "id": knock["peer"]["id"]})
    welcome = await gail.receive()
    assert welcome["self"]["id"] == knock["peer"]["id"]
    assert [peer["id"] for peer in welcome["peers"]] == [olga.id]
    await olga.leave()
    await gail.leave()


# --- Host actions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action",
    [
        {"type": "kick", "id": "PEER"},
        {"type": "mute", "id": "PEER"},
        {"type": "admit", "id": "PEER"},
        {"type": "deny", "id": "PEER"},
        {"type": "lock", "locked": True},
        {"type": "end"},
    ],
    ids=lambda action: action["type"],
)
async def test_host_actions_from_a_participant_change_nothing(call, action):
    olga = await join(call, call.owner)
    ann = await join(call, call.ann)
    ben = await join(call, call.ben)
    await olga.receive_type("peer-joined")
    await olga.receive_type("peer-joined")
    await ann.receive_type("peer-joined")
    if "id" in action:
        action = {**action, "id": ben.id}

    await ann.send(action)

    error = await ann.receive()
    assert (error["type"], error["code"]) == ("error", "host-only")
    assert await olga.hears_nothing()
    assert await ben.hears_nothing()
    assert await ben.still_answers()
    room = await database_sync_to_async(Room.objects.get)(pk=call.room.pk)
    assert room.locked is False
    assert await database_sync_to_async(room.bans.count)() == 0
    for peer in (olga, ann, ben):
        await peer.leave()


async def test_a_kicked_peer_is_closed_and_cannot_rejoin(call):
    olga = await join(call, call.owner)
    ann = await join(call, call.ann)
    await olga.receive_type("peer-joined")

    await olga.send({"type": "kick", "id": ann.id})

    error, code = await ann.refused()
    assert (error["code"], code) == ("kicked", 4403)
    await ann.leave()
    assert await olga.receive() == {"type": "peer-left", "id": ann.id, "reason": "removed"}
    error, code = await refusal(call.room.slug, user=call.ann)
    assert (error["code"], code) == ("kicked", 4403)
    await olga.leave()


async def test_a_co_host_cannot_kick_the_owner(call):
    await database_sync_to_async(services.co_host_add)(room=call.room, user=call.ben)
    olga = await join(call, call.owner)
    ben = await join(call, call.ben)
    await olga.receive_type("peer-joined")

    await ben.send({"type": "kick", "id": olga.id})

    assert (await ben.receive())["code"] == "bad-value"
    assert await olga.still_answers()
    await olga.leave()
    await ben.leave()


async def test_mute_asks_the_peer_to_mute(call):
    olga = await join(call, call.owner)
    ann = await join(call, call.ann)
    await olga.receive_type("peer-joined")

    await olga.send({"type": "mute", "id": ann.id})

    assert await ann.receive() == {"type": "mute-request", "by": {"id": olga.id, "name": "Olga"}}
    assert await olga.hears_nothing()
    await ann.leave()
    await olga.leave()


async def test_lock_tells_everyone_and_keeps_newcomers_out(call):
    olga = await join(call, call.owner)
    ann = await join(call, call.ann)
    await olga.receive_type("peer-joined")

    await olga.send({"type": "lock", "locked": True})

    assert await olga.receive() == {"type": "room", "room": {"locked": True}}
    assert await ann.receive() == {"type": "room", "room": {"locked": True}}
    error, code = await refusal(call.room.slug, user=call.ben)
    assert (error["code"], code) == ("locked", 4423)

    await olga.send({"type": "lock", "locked": False})

    assert await ann.receive() == {"type": "room", "room": {"locked": False}}
    ben = await join(call, call.ben)
    await ben.leave()
    await ann.leave()
    await olga.leave()


async def test_end_disconnects_everyone_with_4410(call):
    olga = await join(call, call.owner)
    ann = await join(call, call.ann)
    await olga.receive_type("peer-joined")

    await olga.send({"type": "end"})

    for peer in (olga, ann):
        error, code = await peer.refused()
        assert (error["code"], code) == ("ended", 4410)


async def test_the_admins_end_and_lock_reach_the_live_call(call):
    ann = await join(call, call.ann)

    await sync_to_async(live.room_locked)(call.room.slug, locked=True)
    assert await ann.receive() == {"type": "room", "room": {"locked": True}}

    await sync_to_async(live.call_end)(call.room.slug)
    error, code = await ann.refused()
    assert (error["code"], code) == ("ended", 4410)


async def test_the_live_participant_count_follows_the_call(call):
    count = sync_to_async(live.participant_count)
    assert await count(call.room.slug) == 0
    olga = await join(call, call.owner)
    ann = await join(call, call.ann)

    assert await count(call.room.slug) == 2

    await ann.leave()
    assert await count(call.room.slug) == 1
    await olga.leave()


# --- Attendance, TURN, keepalive --------------------------------------------------------------


async def attendance_of(user) -> list[Attendance]:
    """Return a user's attendance rows once there are any (they are written just after joining)."""
    async with asyncio.timeout(3):
        while True:
            rows = await database_sync_to_async(list)(user.attendances.all())
            if rows:
                return rows
            await asyncio.sleep(0.02)


async def test_attendance_is_written_on_join_and_leave(call):
    ann = await join(call, call.ann)
    (row,) = await attendance_of(call.ann)
    assert (row.name, row.role, row.left_at) == ("Ann", "participant", None)

    await ann.leave()

    row = await database_sync_to_async(Attendance.objects.get)(pk=row.pk)
    assert row.left_at is not None
    assert row.left_at >= row.joined_at


async def test_attendance_is_ended_when_the_connection_goes_before_it_was_written(call):
    ann = await join(call, call.ann)
    await ann.leave()  # at once: the row may still be on its way

    (row,) = await attendance_of(call.ann)
    assert row.left_at is not None


async def test_turn_credentials_are_given_to_admitted_peers_only(lobby_call, settings):
    settings.TURN_URLS = ["turn:127.0.0.1:3478?transport=udp"]
    settings.TURN_SECRET = "shared-with-coturn"
    settings.ICE_STUN_URLS = ["stun:127.0.0.1:3478"]
    call = lobby_call
    olga = await join(call, call.owner)
    gail = await Peer.connect(call.room.slug, guest=call.gail)

    lobby = await gail.receive()
    assert "iceServers" not in lobby
    stun, relay = olga.welcome["iceServers"]
    assert stun == {"urls": ["stun:127.0.0.1:3478"]}
    assert relay["urls"] == ["turn:127.0.0.1:3478?transport=udp"]
    assert relay["username"].endswith(f":{olga.id}")
    assert turn.verify_turn_credential(relay["username"], relay["credential"])
    assert "shared-with-coturn" not in json.dumps(olga.welcome)
    await olga.leave()
    await gail.leave()


async def test_a_silent_client_is_dropped_and_reported_as_left(call, settings):
    settings.SIGNALING_PRESENCE_TTL = 2
    olga = await join(call, call.owner)
    ann = await join(call, call.ann)
    await olga.receive_type("peer-joined")

    for _ in range(6):  # olga keeps pinging; ann says nothing
        await asyncio.sleep(0.4)
        await olga.send({"type": "ping"})

    error, code = await ann.refused()
    assert (error["code"], code) == ("timed-out", 4408)
    await ann.leave()
    assert await olga.receive_type("peer-left") == {
        "type": "peer-left",
        "id": ann.id,
        "reason": "lost",
    }
    await olga.leave()


async def test_the_admin_room_list_shows_who_is_in_the_call(call, admin_user):
    from django.test import Client

    olga = await join(call, call.owner)
    ann = await join(call, call.ann)
    client = Client()
    await database_sync_to_async(client.force_login)(admin_user)

    page = await sync_to_async(client.get)("/admin/rooms/room/", {"q": call.room.slug})

    assert '<td class="field-live_participants">2, peer-to-peer</td>' in page.text
    await ann.leave()
    await olga.leave()
