"""
Calls through the media server, with a real Janus and aiortc clients that speak only
docs/signaling.md (protocol 2): they publish, subscribe, decode each other's video and chat,
while the site stays in charge of who is in the call.
"""

import asyncio
import contextlib
import fractions

import av
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from channels.db import database_sync_to_async

from rooms import sfu, signaling
from rooms.janus import Janus
from rooms.models import Room
from rooms.presence import get_presence
from tests.conftest import JanusServer
from tests.live_site import LiveSite, seed_call
from tests.rooms.signaling_helpers import Peer
from tests.signaling_client import SignalingClient

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

FRAMES = 30


class SmallVideo(VideoStreamTrack):
    """A 160×120 picture at 30 frames a second: real VP8 for Janus, cheap for two cores."""

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(width=160, height=120, format="yuv420p")
        for plane in frame.planes:
            plane.update(bytes([pts // 3000 % 256]) * plane.buffer_size)
        frame.pts, frame.time_base = pts, time_base or fractions.Fraction(1, 90000)
        return frame


class MediaClient:
    """A person in an sfu call: an aiortc publisher of camera and microphone, and a subscriber."""

    def __init__(self, peer: Peer):
        self.peer = peer
        self.id = peer.id
        self.camera: RTCPeerConnection | None = None
        self.subscription: RTCPeerConnection | None = None
        self.streams: dict[str, dict] = {}  # mid -> {peer, feed, kind}
        self.frames: dict[str, int] = {}  # peer id -> video frames decoded from them
        self.sound: dict[str, int] = {}  # peer id -> audio frames decoded from them
        self.messages: list[dict] = []  # everything else the server sent
        self.offers = 0
        self.moves = 0  # times the server said the call moved (to another media server)
        self.tasks: set[asyncio.Task] = set()
        self.reader = asyncio.ensure_future(self.read())

    @classmethod
    async def join(cls, room: Room, user, *, publish: bool = True) -> "MediaClient":
        peer = await Peer.join(room.slug, user=user, protocol=2)
        assert peer.welcome["media"] == {"mode": "sfu"}, peer.welcome
        client = cls(peer)
        if publish:
            await client.publish()
        return client

    async def publish(self) -> None:
        self.camera = RTCPeerConnection()
        self.camera.addTransceiver(AudioStreamTrack(), direction="sendonly")
        self.camera.addTransceiver(SmallVideo(), direction="sendonly")
        await self.camera.setLocalDescription(await self.camera.createOffer())
        description = self.camera.localDescription
        await self.peer.send(
            {
                "type": "publish",
                "feed": "camera",
                "description": {"type": description.type, "sdp": description.sdp},
            }
        )
        answer = await self.wait_for(lambda m: m["type"] == "published")
        await self.camera.setRemoteDescription(RTCSessionDescription(**answer["description"]))

    async def read(self) -> None:
        while True:
            message = await self.peer.receive(timeout=60)
            if message["type"] == "subscription":
                await self.answer(message)
            elif message["type"] == "media":  # the call moved: publish anew, as the page does
                self.moves += 1
                await self.hang_up()
                self.frames, self.streams = {}, {}
                self.run(self.publish())
            else:
                self.messages.append(message)

    def run(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def hang_up(self) -> None:
        for connection in (self.camera, self.subscription):
            if connection is not None:
                await connection.close()
        self.camera = self.subscription = None

    async def answer(self, offer: dict) -> None:
        self.offers += 1
        self.streams = {stream["mid"]: stream for stream in offer["streams"]}
        if self.subscription is None:
            self.subscription = RTCPeerConnection()
            self.subscription.on("track", self.on_track)
        await self.subscription.setRemoteDescription(RTCSessionDescription(**offer["description"]))
        await self.subscription.setLocalDescription(await self.subscription.createAnswer())
        description = self.subscription.localDescription
        await self.peer.send(
            {"type": "subscribe-answer", "description": {"type": "answer", "sdp": description.sdp}}
        )

    def on_track(self, track) -> None:
        mid = next(t.mid for t in self.subscription.getTransceivers() if t.receiver.track is track)
        self.run(self.count(track, mid, self.frames if track.kind == "video" else self.sound))

    async def count(self, track, mid: str, counts: dict[str, int]) -> None:
        with contextlib.suppress(Exception):  # the track ends when its sender leaves
            while True:
                await track.recv()
                stream = self.streams.get(mid)
                if stream is not None:
                    counts[stream["peer"]] = counts.get(stream["peer"], 0) + 1

    def receiving_from(self) -> set[str]:
        """Return whose video the current subscription carries."""
        return {s["peer"] for s in self.streams.values() if s["kind"] == "video"}

    async def wait_for(self, found, timeout: float = 10) -> dict:
        async with asyncio.timeout(timeout):
            while True:
                for message in self.messages:
                    if found(message):
                        self.messages.remove(message)
                        return message
                await asyncio.sleep(0.02)

    async def until(self, condition, timeout: float = 20) -> None:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if condition():
                        return
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(
                f"{self.id}: frames {self.frames}, streams {self.streams}, offers {self.offers}"
            ) from None

    async def close(self) -> None:
        self.reader.cancel()
        for task in list(self.tasks):
            task.cancel()
        await self.hang_up()
        if self.peer.close_code is None:
            with contextlib.suppress(Exception):
                await self.peer.leave()


@pytest.fixture
def media_server(settings, janus_server):
    settings.JANUS_URLS = [janus_server.url]
    settings.JANUS_API_SECRET = janus_server.api_secret
    return janus_server


@pytest.fixture
def sfu_call(call, media_server):
    call.room.media = Room.Media.SFU
    call.room.save()
    call.carl = call.invitee("carl", "Carl")
    return call


async def admin_request(janus_server, body: dict) -> dict:
    admin = await Janus.connect(
        janus_server.admin_url, secret=janus_server.admin_secret, admin=True
    )
    try:
        return await admin.request(body)
    finally:
        await admin.close()


async def until_sessions(janus_server, wanted, seconds: float = 8) -> None:
    """Return once Janus's number of sessions is as `wanted` says; fail if it never is."""
    async with asyncio.timeout(seconds):
        while True:
            if wanted(len(await sessions_in(janus_server))):
                return
            await asyncio.sleep(0.2)


async def until_no_sessions(janus_server) -> None:
    await until_sessions(janus_server, lambda count: count == 0)


async def videoroom(janus_server, body: dict) -> dict:
    """Ask the VideoRoom plugin something, as an operator with the API secret would."""
    janus = await Janus.connect(janus_server.url, secret=janus_server.api_secret)
    try:
        session = await janus.session()
        handle = await session.attach(sfu.VIDEOROOM)
        reply = await handle.message(body)
        await session.destroy()
        return reply
    finally:
        await janus.close()


async def sessions_in(janus_server) -> list[int]:
    return (await admin_request(janus_server, {"janus": "list_sessions"}))["sessions"]


async def room_exists(janus_server, room: Room) -> bool:
    reply = await videoroom(janus_server, {"request": "exists", "room": sfu.room_number(room.pk)})
    return reply["exists"]


async def people_in(janus_server, room: Room) -> set[str]:
    """Return the peer ids of everyone in the call's VideoRoom room."""
    reply = await videoroom(
        janus_server, {"request": "listparticipants", "room": sfu.room_number(room.pk)}
    )
    return {sfu.feed_of(participant)[0] for participant in reply.get("participants", [])}


def sees_everyone(client: MediaClient, others: list[MediaClient]) -> bool:
    return all(client.frames.get(other.id, 0) >= FRAMES for other in others)


async def test_two_then_three_aiortc_clients_decode_each_other_and_chat(sfu_call):
    olga = await MediaClient.join(sfu_call.room, sfu_call.owner)
    ann = await MediaClient.join(sfu_call.room, sfu_call.ann)
    try:
        await olga.until(lambda: sees_everyone(olga, [ann]) and sees_everyone(ann, [olga]))

        carl = await MediaClient.join(sfu_call.room, sfu_call.carl)
        everyone = [olga, ann, carl]
        for client in everyone:
            others = [other for other in everyone if other is not client]
            await client.until(lambda c=client, o=others: sees_everyone(c, o))

        await ann.peer.send(
            {"type": "chat", "id": "m-1", "text": "<b>Hello</b>", "sentAt": 1767225600000}
        )
        for client in everyone:
            chat = await client.wait_for(lambda m: m["type"] == "chat")
            assert chat == {
                "type": "chat",
                "id": "m-1",
                "text": "<b>Hello</b>",
                "sentAt": 1767225600000,
                "from": {"id": ann.id, "name": "Ann"},
            }
    finally:
        for client in (olga, ann, locals().get("carl")):
            if client is not None:
                await client.close()


async def test_a_person_who_leaves_is_taken_out_of_everyone_s_subscription(sfu_call):
    olga = await MediaClient.join(sfu_call.room, sfu_call.owner)
    ann = await MediaClient.join(sfu_call.room, sfu_call.ann)
    carl = await MediaClient.join(sfu_call.room, sfu_call.carl)
    try:
        await olga.until(lambda: olga.receiving_from() == {ann.id, carl.id})
        await carl.close()
        await olga.until(lambda: olga.receiving_from() == {ann.id}, timeout=5)
        await ann.until(lambda: ann.receiving_from() == {olga.id}, timeout=5)
    finally:
        await olga.close()
        await ann.close()


async def test_a_protocol_1_client_is_refused_from_a_call_on_the_media_server(sfu_call):
    peer = await Peer.connect(sfu_call.room.slug, user=sfu_call.ann)

    error, code = await peer.refused()

    assert error["code"] == signaling.PROTOCOL_UNSUPPORTED
    assert code == 4426


async def test_sfu_messages_in_a_mesh_call_are_refused_and_change_nothing(call, media_server):
    call.room.media = Room.Media.MESH
    await database_sync_to_async(call.room.save)()
    olga = await Peer.join(call.room.slug, user=call.owner, protocol=2)
    assert olga.welcome["media"] == {"mode": "mesh"}

    await olga.send({"type": "chat", "id": "x", "text": "hi", "sentAt": 1})

    error = await olga.receive()
    assert error["code"] == signaling.WRONG_MODE
    assert await olga.still_answers()
    await olga.leave()


async def test_an_automatic_room_moves_to_the_media_server_at_the_fifth_person(call, media_server):
    people = [call.owner, call.ann, call.ben] + [
        await database_sync_to_async(call.invitee)(name, name.title()) for name in ("dan", "eve")
    ]
    peers = []
    for person in people[:4]:
        peer = await Peer.join(call.room.slug, user=person, protocol=2)
        assert peer.welcome["media"] == {"mode": "mesh"}
        peers.append(peer)

    fifth = await Peer.join(call.room.slug, user=people[4], protocol=2)

    assert fifth.welcome["media"] == {"mode": "sfu"}
    for peer in peers:
        assert await peer.receive_type("media") == {"type": "media", "mode": "sfu"}
    # Once there, the call stays: the next person to join is in the same mode, with four others.
    await fifth.leave()
    again = await Peer.join(call.room.slug, user=people[4], protocol=2)
    assert again.welcome["media"] == {"mode": "sfu"}
    for peer in [*peers, again]:
        await peer.leave()


async def test_a_kicked_person_s_feed_stops_for_the_others_within_a_second(sfu_call, media_server):
    olga = await MediaClient.join(sfu_call.room, sfu_call.owner)
    ann = await MediaClient.join(sfu_call.room, sfu_call.ann)
    carl = await MediaClient.join(sfu_call.room, sfu_call.carl)
    try:
        await carl.until(lambda: sees_everyone(carl, [olga, ann]))

        await olga.peer.send({"type": "kick", "id": ann.id})

        left = await carl.wait_for(lambda m: m["type"] == "peer-left", timeout=1)
        assert left == {"type": "peer-left", "id": ann.id, "reason": "removed"}
        # Ann's page is still sending: the media server, not her page, stopped her video.
        await asyncio.sleep(1)
        frames_then = carl.frames[ann.id]
        await asyncio.sleep(1)
        assert carl.frames[ann.id] == frames_then
        assert carl.frames[olga.id] > FRAMES + 30  # while Olga's kept coming
        error = await ann.wait_for(lambda m: m["type"] == "error")
        assert error["code"] == signaling.KICKED
        assert ann.id not in await people_in(media_server, sfu_call.room)
        again = await Peer.connect(sfu_call.room.slug, user=sfu_call.ann, protocol=2)
        error, code = await again.refused()
        assert (error["code"], code) == (signaling.KICKED, 4403)
    finally:
        for client in (olga, ann, carl):
            await client.close()


async def test_a_host_s_mute_silences_a_person_in_the_media_server_until_they_unmute(sfu_call):
    olga = await MediaClient.join(sfu_call.room, sfu_call.owner)
    ann = await MediaClient.join(sfu_call.room, sfu_call.ann)
    carl = await MediaClient.join(sfu_call.room, sfu_call.carl)
    try:
        await carl.until(lambda: carl.sound.get(ann.id, 0) > 50 and sees_everyone(carl, [ann]))

        await olga.peer.send({"type": "mute", "id": ann.id})

        request = await ann.wait_for(lambda m: m["type"] == "mute-request")
        assert request["by"] == {"id": olga.id, "name": "Olga"}
        # Ann's page goes on sending her microphone: the media server no longer forwards it.
        await asyncio.sleep(1)
        heard = carl.sound[ann.id]
        await asyncio.sleep(1)
        assert carl.sound[ann.id] == heard
        assert carl.frames[ann.id] > FRAMES + 30  # her video was not touched

        quiet = {"audio": False, "video": True, "screen": False, "hand": False}
        await ann.peer.send({"type": "state", "state": quiet})
        await ann.peer.send({"type": "state", "state": {**quiet, "audio": True}})

        await carl.until(lambda: carl.sound[ann.id] > heard + 50, timeout=5)
    finally:
        for client in (olga, ann, carl):
            await client.close()


async def test_ending_the_call_closes_the_media_server_s_room(sfu_call, media_server):
    olga = await MediaClient.join(sfu_call.room, sfu_call.owner)
    ann = await MediaClient.join(sfu_call.room, sfu_call.ann)
    assert await room_exists(media_server, sfu_call.room)

    await olga.peer.send({"type": "end"})

    for client in (olga, ann):
        error = await client.wait_for(lambda m: m["type"] == "error")
        assert error["code"] == signaling.ENDED
    assert not await room_exists(media_server, sfu_call.room)
    await until_no_sessions(media_server)
    for client in (olga, ann):
        await client.close()


async def test_a_locked_sfu_room_keeps_newcomers_out(sfu_call):
    olga = await MediaClient.join(sfu_call.room, sfu_call.owner, publish=False)
    await olga.peer.send({"type": "lock", "locked": True})
    await olga.wait_for(lambda m: m["type"] == "room")

    newcomer = await Peer.connect(sfu_call.room.slug, user=sfu_call.ann, protocol=2)

    error, code = await newcomer.refused()
    assert (error["code"], code) == (signaling.LOCKED, 4423)
    await olga.close()


async def test_every_way_a_connection_ends_leaves_no_janus_session(sfu_call, media_server):
    olga = await MediaClient.join(sfu_call.room, sfu_call.owner)
    ann = await MediaClient.join(sfu_call.room, sfu_call.ann)
    carl = await MediaClient.join(sfu_call.room, sfu_call.carl)
    await olga.until(lambda: olga.receiving_from() == {ann.id, carl.id})
    # A clean close, a connection the server times out, and one whose handler crashes.
    await olga.close()
    await ann.peer.communicator.send_input({"type": "websocket.disconnect", "code": 1006})
    await ann.close()
    await carl.peer.send({"type": "receive", "streams": [{"mid": "0", "layer": 7}]})
    await carl.close()

    await until_no_sessions(media_server)


@pytest.fixture
def own_janus(tmp_path):
    """A Janus of this test's alone, which it may kill and start again on the same ports."""
    server = JanusServer(tmp_path / "janus")
    server.start()
    yield server
    server.stop()


async def two_in_a_call(call) -> tuple[MediaClient, MediaClient]:
    """Olga and Ann in an sfu call, each decoding the other's video."""
    olga = await MediaClient.join(call.room, call.owner)
    ann = await MediaClient.join(call.room, call.ann)
    await olga.until(lambda: sees_everyone(olga, [ann]) and sees_everyone(ann, [olga]))
    return olga, ann


def kill(janus: JanusServer, *clients: MediaClient) -> None:
    """Kill a Janus as a crash would, and start counting the clients' frames afresh."""
    janus.process.kill()
    janus.process.wait()
    for client in clients:
        client.frames = {}


async def see_each_other_again(olga: MediaClient, ann: MediaClient) -> None:
    for client, other in ((olga, ann), (ann, olga)):
        await client.until(lambda c=client, o=other: sees_everyone(c, [o]), timeout=30)
        assert client.moves == 1  # told once to publish anew


async def test_janus_killed_mid_call_and_started_again_pages_recover_on_their_own(
    sfu_call, settings, own_janus
):
    settings.JANUS_URLS = [own_janus.url]
    olga, ann = await two_in_a_call(sfu_call)
    try:
        kill(own_janus, olga, ann)
        await asyncio.sleep(2)
        own_janus.start()

        await see_each_other_again(olga, ann)
        assert await room_exists(own_janus, sfu_call.room)
    finally:
        await olga.close()
        await ann.close()


async def test_a_call_on_a_janus_that_dies_moves_to_another_one(
    sfu_call, settings, janus_server, own_janus
):
    settings.JANUS_URLS = [own_janus.url, janus_server.url]
    room = sfu_call.room
    # The test needs the call on the Janus it kills: rename the room until it is placed there.
    while sfu.MediaServers().place(room.slug) != own_janus.url:
        room.slug += "x"
    await database_sync_to_async(room.save)()
    olga, ann = await two_in_a_call(sfu_call)
    try:
        kill(own_janus, olga, ann)

        await see_each_other_again(olga, ann)
        assert await room_exists(janus_server, room)
        media = await get_presence().media(room.slug)
        assert (media["server"], media["generation"]) == (janus_server.url, 2)
    finally:
        await olga.close()
        await ann.close()


@pytest.mark.slow
async def test_a_killed_daphne_process_leaves_no_janus_session(tmp_path, janus_server):
    await until_no_sessions(janus_server)  # what earlier tests left has gone
    site = LiveSite(tmp_path, JANUS_URL=janus_server.url, JANUS_API_SECRET=janus_server.api_secret)
    try:
        call = seed_call(site, "ann", media="sfu")
        port = site.start()
        olga = await SignalingClient.join(port, call["slug"], call["sessions"]["olga"], protocol=2)
        ann = await SignalingClient.join(port, call["slug"], call["sessions"]["ann"], protocol=2)
        assert olga.welcome["media"] == ann.welcome["media"] == {"mode": "sfu"}
        await until_sessions(janus_server, lambda count: count == 2)

        site.kill(port)

        await until_no_sessions(janus_server)
    finally:
        site.stop_all()


async def test_a_protocol_1_client_never_moves_a_call_and_leaves_when_it_moves(call, media_server):
    people = [call.owner, call.ann, call.ben] + [
        await database_sync_to_async(call.invitee)(name, name.title())
        for name in ("dan", "eve", "fay")
    ]
    peers = [await Peer.join(call.room.slug, user=person, protocol=2) for person in people[:4]]

    old = await Peer.join(call.room.slug, user=people[4])  # the fifth, speaking protocol 1

    assert old.welcome["protocol"] == 1 and "media" not in old.welcome
    for peer in peers:
        assert all(message["type"] != "media" for message in await peer.drain())
    sixth = await Peer.join(call.room.slug, user=people[5], protocol=2)
    assert sixth.welcome["media"] == {"mode": "sfu"}
    error, code = await old.refused()
    assert (error["code"], code) == (signaling.PROTOCOL_UNSUPPORTED, 4426)
    for peer in [*peers, sixth]:
        await peer.leave()
