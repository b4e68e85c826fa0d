"""
The largest room one Janus serves on this machine: aiortc clients at 360p, added one at a time.

    python -m bench.sfu_room [--max-people 16] [--settle 5] [--window 6] [--quick] [--json PATH]

A Janus of the run's own (the configuration of tests/conftest.py's JanusServer: VideoRoom and the
WebSocket transport on free ports) and the site under daphne (`python -m conference.server`, DEBUG
off, SQLite, as bench/servers.py starts it) with JANUS_URL and JANUS_API_SECRET set; one room
with media="sfu". Clients join it one at a time, N = 2, 3, 4, ...: each is an aiortc client over a
real websocket (session cookie and Origin, as bench/clients.py connects) speaking protocol 2 of
docs/signaling.md: it publishes its camera feed, a 640×360 VP8 video at 30 frames a second (a
panning textured picture: the encoder works as for a camera) and an Opus audio track, and answers
the subscription the server offers, decoding every video it receives.

At each N, once every client decodes every other one's video, the room settles for `settle`
seconds and is measured for `window` seconds: the frames each publisher's track gave its encoder
(sent), the frames each subscriber decoded from each publisher, the publishers' video bitrate
(aiortc's outbound-rtp bytesSent), and the CPU of Janus, daphne and this load generator (all of
their threads, from /proc). The room **serves** N when every subscriber decoded at least 90 % of
the frames each publisher sent over the window. The ramp stops at the first N that fails, or
when the load generator itself is saturated (its core at 90 % or more): then the limit found is
the machine's, not Janus's, and Janus's CPU per forwarded stream (N × (N − 1) at N: one
publisher's camera feed, video with its audio, to one subscriber) is the figure an operator
extrapolates from.

Pinning, as in the rest of bench/ (two cores and taskset): Janus and daphne on core 0, this
process (every client, their encoders and decoders) on core 1, all at a raised priority where
allowed.
"""

import argparse
import asyncio
import contextlib
import fractions
import json
import logging
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench import procfs
from bench.servers import (
    LOAD_CORE,
    SERVER_CORE,
    SITE,
    Servers,
    can_pin,
    claim_cores,
    run_python,
)

WIDTH, HEIGHT, FPS = 640, 360, 30
# A room serves N when every subscriber decodes at least this share of each publisher's frames.
SERVED_SHARE = 0.9
# The load generator is saturated when it uses this much of its core.
SATURATED = 0.9
# How long a newcomer may take to publish and to receive everyone, and everyone to receive it.
CONNECT_TIMEOUT = 30.0
PING_EVERY = 10.0


# -- the camera -------------------------------------------------------------------------------


def camera_pictures(frames: int = 2 * FPS) -> list[tuple[bytes, bytes, bytes]]:
    """
    Return the Y, U and V planes of `frames` pictures of a textured scene that pans 4 pixels a
    frame with a bright block moving across it: motion and detail, like a camera's picture, so the
    VP8 encoder works and sends as it would for one. Made once, copied into each frame.
    """
    tile = 160  # the texture's period, across and down
    texture = [
        bytes(
            40 + (x * 7 + y * 3) % 61 + ((x // 16 + y // 16) % 2) * 90 + (x * y) % 23
            for x in range(tile)
        )
        for y in range(tile)
    ]
    wide = [row * (WIDTH // tile + 2) for row in texture]
    pictures = []
    for k in range(frames):
        shift = (4 * k) % tile
        rows = [wide[y % tile][shift : shift + WIDTH] for y in range(HEIGHT)]
        top = (k * 6) % (HEIGHT - 60)
        left = (k * 9) % (WIDTH - 80)
        for y in range(top, top + 60):
            row = rows[y]
            rows[y] = row[:left] + bytes([235]) * 80 + row[left + 80 :]
        luma = b"".join(rows)
        u = bytes([(100 + k) % 256]) * (WIDTH // 2 * HEIGHT // 2)
        v = bytes([150]) * (WIDTH // 2 * HEIGHT // 2)
        pictures.append((luma, u, v))
    return pictures


class Camera(VideoStreamTrack):
    """A 640×360 picture at 30 frames a second; counts the frames it gives the encoder."""

    def __init__(self, pictures: list[tuple[bytes, bytes, bytes]]):
        super().__init__()
        self.pictures = pictures
        self.frames = 0

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
        picture = self.pictures[self.frames % len(self.pictures)]
        for plane, data in zip(frame.planes, picture, strict=True):
            plane.update(data)
        frame.pts, frame.time_base = pts, time_base or fractions.Fraction(1, 90000)
        self.frames += 1
        return frame


# -- one person in the call ----------------------------------------------------------------------


class Refused(Exception):
    pass


class SfuClient:
    """One person in an sfu call, over a real websocket: publishes a camera feed, subscribes."""

    def __init__(self, websocket, pictures):
        self.websocket = websocket
        self.pictures = pictures
        self.id: str | None = None
        self.welcomed = asyncio.Event()
        self.mode: str | None = None
        self.camera_track: Camera | None = None
        self.camera: RTCPeerConnection | None = None
        self.subscription: RTCPeerConnection | None = None
        self.streams: dict[str, dict] = {}  # mid -> {peer, feed, kind}
        self.decoded: dict[str, int] = {}  # peer id -> video frames decoded from them
        self.published: asyncio.Future | None = None
        self.offers = 0
        self.errors: list[str] = []
        self.moves = 0
        self.close_code: int | None = None
        self.tasks: set[asyncio.Task] = set()

    @classmethod
    async def join(cls, port: int, slug: str, session: str, pictures) -> "SfuClient":
        websocket = await connect(
            f"ws://127.0.0.1:{port}/ws/rooms/{slug}/"
            f"?instance={secrets.token_urlsafe(12)}&protocol=2",
            origin=f"http://127.0.0.1:{port}",
            additional_headers={"Cookie": f"sessionid={session}"},
            compression=None,
            ping_interval=None,
            open_timeout=CONNECT_TIMEOUT,
            close_timeout=5,
            max_size=None,
        )
        client = cls(websocket, pictures)
        client.run(client.read())
        client.run(client.keep_alive())
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await client.welcomed.wait()
        except TimeoutError:
            await client.close()
            problem = f"no welcome: errors {client.errors}, close {client.close_code}"
            raise Refused(problem) from None
        if client.mode != "sfu":
            await client.close()
            raise Refused(f"the call is in {client.mode!r} mode, not sfu")
        return client

    def run(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def send(self, message: dict) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.websocket.send(json.dumps(message))

    async def keep_alive(self) -> None:
        await asyncio.sleep(secrets.randbelow(1000) / 1000 * PING_EVERY)
        while True:
            await self.send({"type": "ping"})
            await asyncio.sleep(PING_EVERY)

    async def read(self) -> None:
        try:
            async for text in self.websocket:
                message = json.loads(text)
                kind = message.get("type")
                if kind == "welcome":
                    self.id = message["self"]["id"]
                    self.mode = message.get("media", {}).get("mode")
                    self.welcomed.set()
                elif kind == "published":
                    if self.published is not None and not self.published.done():
                        self.published.set_result(message)
                elif kind == "subscription":
                    await self.answer(message)
                elif kind == "media":
                    self.moves += 1  # the media server restarted or failed: noted, not followed
                elif kind == "error":
                    self.errors.append(message.get("code", "?"))
                    if self.published is not None and not self.published.done():
                        self.published.set_exception(Refused(f"error {message}"))
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.websocket.close_code or 1006

    async def publish(self) -> None:
        self.camera = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.camera_track = Camera(self.pictures)
        self.camera.addTransceiver(AudioStreamTrack(), direction="sendonly")
        self.camera.addTransceiver(self.camera_track, direction="sendonly")
        await self.camera.setLocalDescription(await self.camera.createOffer())
        self.published = asyncio.get_running_loop().create_future()
        await self.send(
            {
                "type": "publish",
                "feed": "camera",
                "description": {"type": "offer", "sdp": self.camera.localDescription.sdp},
            }
        )
        async with asyncio.timeout(CONNECT_TIMEOUT):
            answer = await self.published
        await self.camera.setRemoteDescription(RTCSessionDescription(**answer["description"]))

    async def answer(self, offer: dict) -> None:
        self.offers += 1
        self.streams = {stream["mid"]: stream for stream in offer["streams"]}
        if self.subscription is None:
            self.subscription = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            self.subscription.on("track", self.on_track)
        await self.subscription.setRemoteDescription(RTCSessionDescription(**offer["description"]))
        await self.subscription.setLocalDescription(await self.subscription.createAnswer())
        await self.send(
            {
                "type": "subscribe-answer",
                "description": {"type": "answer", "sdp": self.subscription.localDescription.sdp},
            }
        )

    def on_track(self, track) -> None:
        mid = next(t.mid for t in self.subscription.getTransceivers() if t.receiver.track is track)
        self.run(self.drain(track, mid))

    async def drain(self, track, mid: str) -> None:
        """Take every decoded frame of a track (audio too: aiortc queues them until taken)."""
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                if track.kind == "video":
                    stream = self.streams.get(mid)
                    if stream is not None:
                        peer = stream["peer"]
                        self.decoded[peer] = self.decoded.get(peer, 0) + 1

    def receiving_from(self) -> set[str]:
        return {s["peer"] for s in self.streams.values() if s["kind"] == "video"}

    async def video_bytes_sent(self) -> int:
        if self.camera is None:
            return 0
        sent = 0
        for sender in self.camera.getSenders():
            if sender.track is not None and sender.track.kind == "video":
                for stats in (await sender.getStats()).values():
                    if stats.type == "outbound-rtp":
                        sent += stats.bytesSent
        return sent

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for connection in (self.camera, self.subscription):
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.close()
        with contextlib.suppress(Exception):
            await self.websocket.close()


# -- the ramp ------------------------------------------------------------------------------------


async def until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.1)
    return condition()


def everyone_decodes(clients: list[SfuClient], at_least: int = 1) -> bool:
    return all(
        client.decoded.get(other.id, 0) >= at_least
        for client in clients
        for other in clients
        if other is not client
    )


async def snapshot(clients: list[SfuClient], pids: dict[str, int]) -> dict:
    return {
        "t": time.monotonic(),
        "cpu": {name: procfs.cpu_seconds(pid) for name, pid in pids.items()},
        "sent": {c.id: c.camera_track.frames for c in clients},
        "bytes": {c.id: await c.video_bytes_sent() for c in clients},
        "decoded": {c.id: dict(c.decoded) for c in clients},
    }


def compare(before: dict, after: dict, clients: list[SfuClient]) -> dict:
    """The figures of one N: fps sent and decoded, the worst share decoded, CPU, bitrate."""
    seconds = after["t"] - before["t"]
    sent = {p: (after["sent"][p] - before["sent"][p]) for p in after["sent"]}
    shares, decoded_fps = [], []
    worst = None
    for client in clients:
        for other in clients:
            if other is client:
                continue
            got = after["decoded"][client.id].get(other.id, 0) - before["decoded"][client.id].get(
                other.id, 0
            )
            share = got / sent[other.id] if sent[other.id] else 0.0
            shares.append(share)
            decoded_fps.append(got / seconds)
            if worst is None or share < worst[0]:
                worst = (share, client.id, other.id)
    cpu = {name: (after["cpu"][name] - before["cpu"][name]) / seconds for name in after["cpu"]}
    n = len(clients)
    streams = n * (n - 1)
    kbps = [(after["bytes"][p] - before["bytes"][p]) * 8 / seconds / 1000 for p in after["bytes"]]
    return {
        "people": n,
        "seconds": round(seconds, 2),
        "sent_fps": sorted(round(frames / seconds, 1) for frames in sent.values()),
        "decoded_fps_min": round(min(decoded_fps), 1),
        "decoded_fps_median": round(sorted(decoded_fps)[len(decoded_fps) // 2], 1),
        "decoded_share_min": round(worst[0], 3),
        "worst_pair": {"subscriber": worst[1], "publisher": worst[2]},
        "served": min(shares) >= SERVED_SHARE,
        "forwarded_video_streams": streams,
        "publisher_video_kbps_median": round(sorted(kbps)[len(kbps) // 2]),
        "janus_cpu": round(cpu["janus"], 3),
        "daphne_cpu": round(cpu["daphne"], 3),
        "load_cpu": round(cpu["load"], 3),
        "janus_cpu_per_forwarded_stream": round(cpu["janus"] / streams, 4),
        "load_saturated": cpu["load"] >= SATURATED,
        "errors": sorted({e for c in clients for e in c.errors}),
    }


async def ramp(
    port: int,
    slug: str,
    sessions: list[str],
    pids: dict[str, int],
    *,
    settle: float,
    window: float,
    say,
) -> dict:
    pictures = camera_pictures()
    clients: list[SfuClient] = []
    steps: list[dict] = []
    stopped = f"reached the room's {len(sessions)} seats"
    try:
        for session in sessions:
            try:
                client = await SfuClient.join(port, slug, session, pictures)
                clients.append(client)
                await client.publish()
            except Exception as error:
                stopped = f"person {len(clients) + 1} could not join or publish: {error!r}"
                break
            if len(clients) < 2:
                continue
            n = len(clients)
            connected = await until(lambda: everyone_decodes(clients), CONNECT_TIMEOUT)
            if not connected:
                steps.append(
                    {
                        "people": n,
                        "served": False,
                        "failure": f"not everyone decoded everyone within {CONNECT_TIMEOUT:g} s",
                        "decoded": {c.id: dict(c.decoded) for c in clients},
                    }
                )
                stopped = f"at {n} people, not everyone received everyone"
                say(f"sfu-room: {n} people: {steps[-1]['failure']}")
                break
            await asyncio.sleep(settle)
            before = await snapshot(clients, pids)
            await asyncio.sleep(window)
            after = await snapshot(clients, pids)
            step = compare(before, after, clients)
            steps.append(step)
            say(
                f"sfu-room: {n} people: sent {min(step['sent_fps'])}-{max(step['sent_fps'])} "
                f"fps, decoded ≥ {step['decoded_share_min']:.0%} of each "
                f"({step['decoded_fps_min']} fps at worst), Janus {step['janus_cpu']:.0%}, "
                f"daphne {step['daphne_cpu']:.0%}, load {step['load_cpu']:.0%} of a core, "
                f"{step['publisher_video_kbps_median']} kbit/s per publisher"
                + ("" if step["served"] else " — NOT SERVED")
            )
            if not step["served"]:
                stopped = f"at {n} people a subscriber decoded under {SERVED_SHARE:.0%}"
                break
            if step["load_saturated"]:
                stopped = f"at {n} people the load generator saturated its core"
                break
    finally:
        for client in clients:
            await client.close()
    return {"steps": steps, "stopped": stopped}


def summarise(figures: dict) -> dict:
    """Name the largest N served and whose limit it is (Janus's, or the load generator's)."""
    steps = [s for s in figures["steps"] if "janus_cpu" in s or "failure" in s]
    served = [s for s in steps if s.get("served")]
    last = steps[-1] if steps else None
    figures["largest_served"] = served[-1]["people"] if served else None
    limited_by = "room size"
    if last is not None:
        if last.get("load_saturated"):
            limited_by = "load generator"
        elif not last.get("served"):
            limited_by = "janus" if last.get("janus_cpu", 0) >= SATURATED else "frames dropped"
    figures["limited_by"] = limited_by
    measured = [s for s in steps if "janus_cpu_per_forwarded_stream" in s]
    if measured:
        top = max(measured, key=lambda s: s["forwarded_video_streams"])
        figures["janus_cpu_per_forwarded_stream"] = top["janus_cpu_per_forwarded_stream"]
        figures["janus_streams_per_core"] = (
            round(1 / top["janus_cpu_per_forwarded_stream"])
            if top["janus_cpu_per_forwarded_stream"]
            else None
        )
    return figures


# -- servers -------------------------------------------------------------------------------------


@contextlib.contextmanager
def on_core(core: int):
    """Run the block on this core alone: the processes it starts inherit it, threads and all."""
    mine = os.sched_getaffinity(0)
    if can_pin():
        os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, mine)


@contextlib.contextmanager
def janus_server(folder: Path):
    """A Janus of the run's own, configured as tests/conftest.py's JanusServer, on core 0."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "conference.settings")
    import django

    django.setup()  # tests/conftest.py imports the project's factories
    # Django's logging set-up lets aioice tell every ICE check, and aiortc every frame it could
    # not decode before a subscription's first keyframe: errors are enough.
    for name in ("aioice", "aiortc"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from tests.conftest import JanusServer

    janus = JanusServer(folder)
    with on_core(SERVER_CORE):
        janus.start()
    try:
        yield janus
    finally:
        janus.stop()


SET_MEDIA = """
import django
django.setup()
from rooms.models import Room
Room.objects.filter(slug={slug!r}).update(media={media!r}, max_participants={seats})
"""


def measure(
    run_dir: Path, *, max_people: int = 16, settle: float = 5, window: float = 6, say=print
) -> dict:
    """Run the ramp on fresh servers; return its steps and the limit found."""
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with (
        janus_server(run_dir / "janus") as janus,
        Servers(run_dir, pairs=1, groups=1, group_size=max_people) as servers,
    ):
        database = servers.database("sqlite")
        room = database.seating.groups[0]
        run_python(
            ["-c", SET_MEDIA.format(slug=room.slug, media="sfu", seats=max_people)], database.env
        )
        settings = {"JANUS_URL": janus.url, "JANUS_API_SECRET": janus.api_secret}
        with contextlib.ExitStack() as stack:
            with on_core(SERVER_CORE):
                server = stack.enter_context(servers.start(SITE, **settings))
            pids = {"janus": janus.process.pid, "daphne": server.pid, "load": os.getpid()}
            cores = {name: sorted(os.sched_getaffinity(pid)) for name, pid in pids.items()}
            load_before = procfs.load_average()
            figures = asyncio.run(
                ramp(
                    server.port,
                    room.slug,
                    list(room.sessions),
                    pids,
                    settle=settle,
                    window=window,
                    say=say,
                )
            )
            figures["server_log"] = server.log_summary()
            figures["log_file"] = str(server.log_path)
    figures["janus_log"] = str(run_dir / "janus" / "janus.log")
    figures["load_average_before"] = load_before
    figures["load_average_after"] = procfs.load_average()
    figures["video"] = f"{WIDTH}x{HEIGHT} VP8 at {FPS} fps, one layer, plus Opus audio"
    figures["pinned"] = (
        f"Janus and daphne on core {SERVER_CORE}, the load on core {LOAD_CORE}"
        if can_pin()
        else "not pinned"
    )
    figures["cores"] = cores
    figures["seconds"] = round(time.monotonic() - started, 1)
    return summarise(figures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sfu_room", description=__doc__)
    parser.add_argument("--max-people", type=int, default=16)
    parser.add_argument("--settle", type=float, default=5)
    parser.add_argument("--window", type=float, default=6)
    parser.add_argument("--quick", action="store_true", help="2 and 3 people, short windows")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.max_people, args.settle, args.window = 3, 1, 2
    print(claim_cores(), flush=True)
    run_dir = Path(tempfile.mkdtemp(prefix="bench-sfu-room-"))
    figures = measure(
        run_dir,
        max_people=args.max_people,
        settle=args.settle,
        window=args.window,
        say=lambda line: print(line, flush=True),
    )
    text = json.dumps(figures, indent=2, default=str)
    if args.json:
        args.json.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
