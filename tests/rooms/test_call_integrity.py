"""
Call integrity through the real ASGI stack: every ending cleans up once, a full queue costs nobody
their connection, a page's reconnection replaces its old connection, and access changes reach
people already in the call.
"""

import asyncio
import datetime as dt

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from rooms import live, selectors, services
from rooms.consumers import RoomConsumer
from rooms.models import Attendance, Ban, Guest, Room
from rooms.presence import get_presence
from tests.factories import MeetingFactory
from tests.rooms.signaling_helpers import Peer
from tests.rooms.test_consumers import CANDIDATE

pytestmark = pytest.mark.django_db(transaction=True)


async def invitee(call, name: str):
    return await database_sync_to_async(call.invitee)(name, name.title())


async def join(call, user, **kwargs):
    return await Peer.join(call.room.slug, user=user, **kwargs)


def in_presence(call) -> list[str]:
    return sorted(get_presence().names(call.room.slug))


def presence_entry(name: str, *, channel: str) -> dict:
    """A participant's entry in presence with no connection of this process behind it."""
    return {
        "id": f"{name}-peer",
        "name": name.title(),
        "role": "participant",
        "state": {"audio": True, "video": True, "screen": False, "hand": False},
        "instance": f"{name}-page",
        "channel": channel,
        "user_id": None,
        "guest_id": None,
        "browser": "",
    }


async def open_attendance(call) -> list[str]:
    rows = Attendance.objects.filter(room=call.room, left_at__isnull=True)
    return sorted(await database_sync_to_async(lambda: [row.name for row in rows])())


# --- Every ending cleans up the same way -----------------------------------------------------


async def test_a_handler_that_raises_still_leaves_the_call_cleanly(call, monkeypatch):
    olga = await join(call, call.owner)
    ann = await join(call, call.ann)
    await olga.receive_type("peer-joined")

    async def broken(self, **fields):
        raise RuntimeError("a bug in a handler")

    monkeypatch.setitem(RoomConsumer.HANDLERS, "state", broken)
    await ann.send({"type": "state", "state": {"audio": 1}})  # refused by the parser: no crash
    assert (await ann.receive())["code"] == "wrong-type"
    state = {"audio": False, "video": True, "screen": False, "hand": False}
    await ann.send({"type": "state", "state": state})

    with pytest.raises(RuntimeError, match="a bug in a handler"):
        await ann.communicator.receive_output(3)
    assert await olga.receive() == {"type": "peer-left", "id": ann.id, "reason": "lost"}
    assert await olga.hears_nothing()  # once
    assert in_presence(call) == ["Olga"]
    assert await open_attendance(call) == ["Olga"]
    await olga.leave()


async def test_a_cancelled_consumer_still_leaves_the_call_cleanly(call):
    olga = await join(call, call.owner)
    ann = await join(call, call.ann)
    await olga.receive_type("peer-joined")

    ann.communicator.future.cancel()  # what daphne does to every connection when it shuts down

    assert await olga.receive() == {"type": "peer-left", "id": ann.id, "reason": "lost"}
    assert await olga.hears_nothing()
    assert in_presence(call) == ["Olga"]
    assert await open_attendance(call) == ["Olga"]
    await olga.leave()


async def test_a_server_close_takes_the_peer_out_before_the_client_answers(call):
    """An end closes six sockets; nobody's close reply is needed for the call to be clean."""
    people = [await join(call, call.owner)]
    for name in ["cid", "dee", "eve", "fay", "gus"]:
        people.append(await join(call, await invitee(call, name)))
    for peer in people:
        await peer.drain()

    await people[0].send({"type": "end"})

    for peer in people:
        error, code = await peer.refused()
        assert (error["code"], code) == ("ended", 4410)
        assert await peer.hears_nothing()  # nothing after the close, though events went on
    # Nobody has answered the close frames yet; the call is already empty and its rows closed.
    await asyncio.sleep(0.2)
    assert in_presence(call) == []
    assert await open_attendance(call) == []
    newcomer = await join(call, call.owner)
    assert newcomer.welcome["peers"] == []
    await newcomer.leave()


# --- A full queue costs nobody their connection ----------------------------------------------


async def test_a_burst_of_candidates_to_a_newcomer_reaches_it_and_costs_nobody_anything(call):
    """Five people each send 40 candidates to one newcomer at once, within the rate limit."""
    people = [await join(call, call.owner)]
    for name in ["cid", "dee", "eve", "fay"]:
        people.append(await join(call, await invitee(call, name)))
    newcomer = await join(call, await invitee(call, "new"))
    for peer in people:
        await peer.drain()

    for number in range(40):
        for peer in people:
            candidate = {"candidate": {**CANDIDATE["candidate"], "sdpMLineIndex": number}}
            await peer.send({"type": "signal", "to": newcomer.id, "data": candidate})

    received = [await newcomer.receive() for _ in range(200)]
    for peer in people:
        from_peer = [
            m["data"]["candidate"]["sdpMLineIndex"] for m in received if m["from"] == peer.id
        ]
        assert from_peer == list(range(40))  # every one, in order per sender
        assert await peer.still_answers()
    for peer in [*people, newcomer]:
        await peer.leave()


async def test_a_signal_to_a_stalled_peer_is_refused_to_the_sender_who_stays(call, settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "conference.layers.InProcessChannelLayer", "CONFIG": {"capacity": 5}}
    }
    olga = await join(call, call.owner)
    # A peer whose connection reads nothing: an entry in presence whose channel nobody drains.
    stalled = presence_entry("stalled", channel=await get_channel_layer().new_channel())
    await get_presence().admit(call.room.slug, stalled, limit=12)
    ann = await join(call, call.ann)
    assert [peer["id"] for peer in ann.welcome["peers"] if peer["id"] == "stalled-peer"]

    for _ in range(5):
        await ann.send({"type": "signal", "to": "stalled-peer", "data": CANDIDATE})
    assert await ann.hears_nothing()
    await ann.send({"type": "signal", "to": "stalled-peer", "data": CANDIDATE})

    error = await ann.receive()
    assert error["type"] == "error"
    assert error["code"] == "peer-busy"
    assert "stalled-peer" in error["message"]
    assert await ann.still_answers()
    await ann.send({"type": "signal", "to": olga.id, "data": CANDIDATE})
    assert (await olga.receive_type("signal"))["from"] == ann.id
    await get_presence().remove(call.room.slug, "stalled-peer")
    await ann.leave()
    await olga.leave()


async def test_a_peer_nobody_vouches_for_is_reported_lost_and_its_attendance_ended(call, settings):
    """The peer of a process that died just after it recorded the join, and before anything else."""
    settings.SIGNALING_PRESENCE_TTL = 0.6
    ghost = presence_entry("ghost", channel="gone-process!ghost")
    await get_presence().admit(call.room.slug, ghost, limit=12)
    await database_sync_to_async(Attendance.objects.create)(
        room=call.room, peer="ghost-peer", name="Ghost", role="participant"
    )
    olga = await join(call, call.owner)
    assert [peer["id"] for peer in olga.welcome["peers"]] == ["ghost-peer"]

    left = await olga.receive_type("peer-left", timeout=5)

    assert left == {"type": "peer-left", "id": "ghost-peer", "reason": "lost"}
    assert in_presence(call) == ["Olga"]
    assert await open_attendance(call) == ["Olga"]
    await olga.leave()


# --- A page connecting again -----------------------------------------------------------------


async def test_a_page_that_connects_again_replaces_its_old_connection_even_in_a_full_call(call):
    await database_sync_to_async(Room.objects.filter(pk=call.room.pk).update)(max_participants=2)
    olga = await join(call, call.owner)
    old = await join(call, call.ann, page="page-of-ann-0001")
    await olga.receive_type("peer-joined")

    # The page's side of the old socket died; the server has not noticed yet.
    new = await join(call, call.ann, page="page-of-ann-0001")

    assert new.welcome["self"]["instance"] == old.instance
    assert [peer["id"] for peer in new.welcome["peers"]] == [olga.id]
    assert await olga.receive() == {"type": "peer-left", "id": old.id, "reason": "lost"}
    joined = await olga.receive()
    assert (joined["type"], joined["peer"]["id"], joined["peer"]["instance"]) == (
        "peer-joined",
        new.id,
        old.instance,
    )
    error, code = await old.refused()
    assert (error["code"], code) == ("replaced", 4412)
    await old.leave()
    assert await olga.hears_nothing()  # the old one is not reported twice
    assert in_presence(call) == ["Ann", "Olga"]
    assert await open_attendance(call) == ["Ann", "Olga"]
    await new.leave()
    await olga.leave()


async def test_a_page_back_from_a_lost_connection_does_not_wait_in_the_lobby_again(lobby_call):
    call, gail = lobby_call, lobby_call.gail
    olga = await join(call, call.owner)
    first = await Peer.connect(call.room.slug, guest=gail, page="page-of-gail-01")
    assert (await first.receive())["type"] == "lobby"
    knock = await olga.receive_type("knock")
    await olga.send({"type": "admit", "id": knock["peer"]["id"]})
    assert (await first.receive())["type"] == "welcome"

    again = await Peer.join(call.room.slug, guest=gail, page="page-of-gail-01")

    assert [peer["id"] for peer in again.welcome["peers"]] == [olga.id]
    await again.leave()
    await first.leave()
    await olga.leave()


# --- Access that changes during a call -------------------------------------------------------


async def test_a_ban_from_the_admin_turns_the_person_out_of_the_live_call(call):
    olga = await join(call, call.owner)
    ann = await join(call, call.ann)
    await olga.receive_type("peer-joined")

    await sync_to_async(services.ban_create)(room=call.room, user=call.ann)

    error, code = await ann.refused()
    assert (error["code"], code) == ("kicked", 4403)
    assert await olga.receive() == {"type": "peer-left", "id": ann.id, "reason": "removed"}
    assert await olga.still_answers()  # nobody else is touched
    await ann.leave()
    await olga.leave()


async def test_a_revoked_link_turns_its_guest_out_of_the_live_call(call):
    invitation, token = await sync_to_async(services.invitation_create)(
        room=call.room, created_by=call.owner, allow_guests=True
    )
    _, gail = await sync_to_async(services.invitation_redeem)(token=token, guest_name="Gail")
    olga = await join(call, call.owner)
    guest = await Peer.join(call.room.slug, guest=gail)
    await olga.receive_type("peer-joined")

    await sync_to_async(services.invitation_revoke)(invitation=invitation)

    error, code = await guest.refused()
    assert (error["code"], code) == ("not-allowed", 4403)
    assert await olga.receive() == {"type": "peer-left", "id": guest.id, "reason": "removed"}
    await guest.leave()
    await olga.leave()


async def test_a_co_host_removed_during_the_call_loses_the_role_at_once(call):
    await sync_to_async(services.co_host_add)(room=call.room, user=call.ben)
    olga = await join(call, call.owner)
    ben = await join(call, call.ben)
    assert ben.welcome["self"]["role"] == "cohost"
    await olga.receive_type("peer-joined")

    await sync_to_async(services.co_host_remove)(room=call.room, user=call.ben)

    # Ben is still invited to the room, so he stays, as a participant, and everyone is told.
    assert await ben.receive() == {"type": "peer-role", "id": ben.id, "role": "participant"}
    assert await olga.receive() == {"type": "peer-role", "id": ben.id, "role": "participant"}
    await ben.send({"type": "lock", "locked": True})
    assert (await ben.receive())["code"] == "host-only"
    await ben.leave()
    await olga.leave()


async def test_a_kick_bans_the_browser_and_the_link_the_guest_came_by(call):
    invitation, token = await sync_to_async(services.invitation_create)(
        room=call.room, created_by=call.owner, allow_guests=True
    )
    _, gail = await sync_to_async(services.invitation_redeem)(token=token, guest_name="Gail")
    olga = await join(call, call.owner)
    guest = await Peer.join(call.room.slug, guest=gail, browser="gails-browser")
    await olga.receive_type("peer-joined")

    await olga.send({"type": "kick", "id": guest.id})

    error, code = await guest.refused()
    assert (error["code"], code) == ("kicked", 4403)
    ban = await database_sync_to_async(Ban.objects.get)(room=call.room)
    assert (ban.guest_id, ban.invitation_id) == (gail.pk, invitation.pk)
    assert ban.browser == selectors.browser_of({selectors.BROWSER_SESSION_KEY: "gails-browser"})
    assert await sync_to_async(selectors.link_is_blocked)(invitation)
    # The same browser is kept out under another name too, signed in or not.
    error, code = await (
        await Peer.connect(call.room.slug, user=call.ben, browser="gails-browser")
    ).refused()
    assert (error["code"], code) == ("kicked", 4403)
    await guest.leave()
    await olga.leave()


# --- End means ended -------------------------------------------------------------------------


async def test_after_end_people_cannot_rejoin_until_a_host_starts_again(call):
    olga = await join(call, call.owner)
    ann = await join(call, call.ann)
    await olga.receive_type("peer-joined")

    await olga.send({"type": "end"})

    error, code = await olga.refused()
    assert (error["code"], code, error["message"]) == (
        "ended",
        4410,
        "You ended the call for everyone.",
    )
    error, code = await ann.refused()
    assert (error["code"], code, error["message"]) == (
        "ended",
        4410,
        "A host ended the call for everyone.",
    )
    error, code = await (await Peer.connect(call.room.slug, user=call.ann)).refused()
    assert (error["code"], code) == ("ended", 4410)

    host = await join(call, call.owner)  # a host joining starts it again
    back = await join(call, call.ann)
    assert [peer["id"] for peer in back.welcome["peers"]] == [host.id]
    await back.leave()
    await host.leave()


async def test_an_ended_meeting_opens_again_at_its_next_occurrence(call):
    now = timezone.now().replace(microsecond=0)
    meeting = await database_sync_to_async(MeetingFactory)(
        room=call.room,
        starts_at=now - dt.timedelta(minutes=5),
        ends_at=now + dt.timedelta(minutes=55),
        recurrence="FREQ=DAILY;COUNT=3",
    )
    await sync_to_async(services.call_end)(room=call.room)

    error, code = await (await Peer.connect(call.room.slug, user=call.ann)).refused()

    assert (error["code"], code) == ("ended", 4410)
    opens_at = dt.datetime.fromisoformat(error["opensAt"])
    assert opens_at == meeting.starts_at + dt.timedelta(days=1, minutes=-10)
    room = await database_sync_to_async(Room.objects.get)(pk=call.room.pk)
    tomorrow = opens_at + dt.timedelta(minutes=1)
    decision = await sync_to_async(selectors.join_decision)(room, user=call.ann, at=tomorrow)
    assert decision.allowed


async def test_the_admins_end_closes_the_call_with_the_hosts_words(call):
    ann = await join(call, call.ann)

    await sync_to_async(live.call_end)(call.room.slug)

    error, code = await ann.refused()
    assert (error["code"], code, error["message"]) == (
        "ended",
        4410,
        "A host ended the call for everyone.",
    )


# --- A removed guest stays out ----------------------------------------------------------------


async def test_a_kicked_guest_stays_out_by_the_same_link_in_any_session(call):
    """The guest reopens the link in the same browser, then in a new one, and types a new name."""
    _, token = await sync_to_async(services.invitation_create)(
        room=call.room, created_by=call.owner, allow_guests=True
    )
    link = f"/i/{token}/"
    browser = Client()
    response = await sync_to_async(browser.post)(link, {"name": "Gail"})
    assert response.status_code == 302
    cookie = f"sessionid={browser.cookies['sessionid'].value}".encode()
    await sync_to_async(browser.get)(call.room.get_call_url())  # gives the browser its id
    olga = await join(call, call.owner)
    guest = await Peer.join(call.room.slug, cookie=cookie)
    await olga.receive_type("peer-joined")

    await olga.send({"type": "kick", "id": guest.id})
    assert (await guest.refused())[0]["code"] == "kicked"
    await guest.leave()

    # The same browser, under a new name: the call page and the websocket refuse it.
    await sync_to_async(browser.post)(link, {"name": "Not Gail"})
    page = await sync_to_async(browser.get)(call.room.get_call_url())
    assert page.status_code == 403
    assert "A host removed you from this call." in page.text
    assert "Join" not in page.text
    error, code = await (await Peer.connect(call.room.slug, cookie=cookie)).refused()
    assert (error["code"], code) == ("kicked", 4403)
    # A new browser session: the link takes no new guest while the ban lasts.
    response = await sync_to_async(Client().post)(link, {"name": "Gale"})
    assert response.status_code == 200
    assert "lets no new guests in" in response.text
    guests = await database_sync_to_async(Guest.objects.filter(invitation__room=call.room).count)()
    assert guests == 1
    await olga.leave()


async def test_a_ban_added_in_the_django_admin_reaches_the_live_call(call, admin_user):
    olga = await join(call, call.owner)
    ann = await join(call, call.ann)
    await olga.receive_type("peer-joined")
    admin = Client()
    await database_sync_to_async(admin.force_login)(admin_user)

    response = await sync_to_async(admin.post)(
        reverse("admin:rooms_ban_add"),
        {"room": call.room.pk, "user": call.ann.pk, "expires_at_0": "", "expires_at_1": ""},
    )

    assert response.status_code == 302, response.text
    error, code = await ann.refused()
    assert (error["code"], code) == ("kicked", 4403)
    assert await olga.receive() == {"type": "peer-left", "id": ann.id, "reason": "removed"}
    ban = await database_sync_to_async(Ban.objects.get)(room=call.room)
    assert ban.created_by_id == admin_user.pk
    await ann.leave()
    await olga.leave()
