"""
The bench's smoke test: at tiny scale, `python -m bench --quick` produces every figure for every
server, and each server relays a signal to the peer it names, from the peer that sent it, and to
nobody else. How fast anything is, is the bench's to say (`make bench`), never a test's.
"""

import asyncio
import json
import math
import subprocess
import sys

import pytest

from bench.clients import Peer, close_all, description
from bench.servers import (
    BASE_DIR,
    FLOOR,
    RELAY,
    SITE,
    SITE_POSTGRES,
    SITE_REDIS,
    Servers,
    clean_environment,
)

# What each scenario must have measured on each server.
EXPECTED = {
    "steady": ((RELAY, FLOOR, SITE, SITE_REDIS), ("p50_ms", "p99_ms", "max_ms", "lost")),
    "burst": ((RELAY, FLOOR, SITE), ("fresh", "churn", "after_churn")),
    "idle": ((RELAY, FLOOR, SITE), ("kib_per_socket",)),
    "storm": ((RELAY, FLOOR, SITE, SITE_REDIS, SITE_POSTGRES), ("seconds", "lost")),
}


@pytest.mark.slow
def test_the_quick_bench_measures_every_scenario_on_every_server(tmp_path):
    saved = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", ",".join(EXPECTED)]
        + ["--json", str(saved)],
        cwd=BASE_DIR,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr
    results = json.loads(saved.read_text())
    for scenario, (servers, figures) in EXPECTED.items():
        runs = results[scenario]
        if scenario == "steady":
            (runs,) = runs.values()  # one socket count in a quick run
        for server in servers:
            measured = runs[server]
            assert "error" not in measured, (scenario, server, measured)
            for figure in figures:
                value = measured[figure]
                if isinstance(value, dict):  # the burst's phases
                    assert "error" not in value
                else:
                    assert not math.isnan(value), (scenario, server, figure)
        if scenario == "burst":
            for server in servers:
                assert runs[server]["fresh"]["delivered"] == runs[server]["fresh"]["sent"] > 0
                assert runs[server]["after_churn"]["msgs_per_s"] > 0
    assert "| steady" in run.stdout and "| storm" in run.stdout


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    with Servers(tmp_path_factory.mktemp("bench"), pairs=1, groups=1, group_size=3) as servers:
        yield servers


async def signal_between_three(port: int, slug: str, sessions: list[str | None]) -> dict:
    """Alice, Bob and Carol join; Alice signals Bob; return what each of them read."""
    signals = {"alice": [], "bob": [], "carol": []}
    signalled = asyncio.Event()

    def on_signal(name: str, message: dict) -> None:
        signals[name].append(message)
        signalled.set()

    peers = {}
    for name, session in zip(signals, sessions, strict=True):
        peers[name] = await Peer.join(
            port,
            slug,
            session,
            on_signal=lambda peer, message, read_at, name=name: on_signal(name, message),
        )
    alice, bob, carol = peers.values()
    async with asyncio.timeout(10):
        await alice.wait_for_others(2)  # Alice's side has heard of Bob and Carol joining
        await alice.signal(bob.id, description("offer", 7, 0))
        await signalled.wait()
        # Anything meant for Carol would have gone out with Bob's, before this pong.
        await carol.send({"type": "ping"})
        await carol.ponged.wait()
    await close_all(list(peers.values()))
    welcomes = {name: peer.welcome for name, peer in peers.items()}
    return {"signals": signals, "welcomes": welcomes, "ids": {n: p.id for n, p in peers.items()}}


@pytest.mark.parametrize("name", [RELAY, FLOOR, SITE])
def test_each_server_relays_a_signal_to_the_named_peer_only(servers, name):
    with servers.start(name) as server:
        room = server.seating.groups[0]
        seen = asyncio.run(signal_between_three(server.port, room.slug, room.sessions))

    ids = seen["ids"]
    assert seen["signals"] == {
        "alice": [],
        "bob": [{"type": "signal", "from": ids["alice"], "data": description("offer", 7, 0)}],
        "carol": [],
    }
    carol_welcome = seen["welcomes"]["carol"]
    assert carol_welcome["type"] == "welcome" and carol_welcome["protocol"] == 1
    assert carol_welcome["self"]["id"] == ids["carol"]
    assert carol_welcome["self"]["role"] == "participant"
    assert {peer["id"] for peer in carol_welcome["peers"]} == {ids["alice"], ids["bob"]}
    for peer in carol_welcome["peers"]:
        assert set(peer) == {"id", "name", "role", "state", "instance"}
    assert carol_welcome["room"]["slug"] == room.slug


@pytest.mark.slow
def test_the_quick_bench_measures_the_media_server_scenarios(tmp_path):
    """
    sfu-room adds aiortc clients to a room on a Janus of its own (2, then 3 in a quick run) and
    measures each; sfu-browsers puts Chromium processes in a mesh call (and, once the page's SFU
    path is there, an SFU one) and measures each browser. Whether a room is served is the bench's
    to say: here each step has its figures, and every client decoded every other one.
    """
    saved = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "sfu-room,sfu-browsers"]
        + ["--json", str(saved)],
        cwd=BASE_DIR,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert run.returncode == 0, run.stderr
    results = json.loads(saved.read_text())

    room = results["sfu-room"]
    assert "error" not in room, room
    assert [step["people"] for step in room["steps"]] == [2, 3], room
    for step in room["steps"]:
        assert step["decoded_fps_min"] > 0, step
        assert min(step["sent_fps"]) > 0, step
        for figure in ("janus_cpu", "load_cpu", "janus_cpu_per_forwarded_stream"):
            assert not math.isnan(step[figure]), (figure, step)
        assert step["forwarded_video_streams"] == step["people"] * (step["people"] - 1)

    browsers = results["sfu-browsers"]
    assert "error" not in browsers, browsers
    measured = [browsers["mesh"]]
    if "skipped" not in browsers["sfu"]:
        measured.append(browsers["sfu"])
    for call in measured:
        assert "error" not in call, call
        assert len(call["people"]) == 3
        for person in call["people"]:
            assert person["cpu"] > 0 and person["video_kbps_out"] > 0, person
            assert person["decoded_fps_in"] > 0, person
    assert "| SFU room" in run.stdout and "Chromium processes in a call, mesh" in run.stdout
