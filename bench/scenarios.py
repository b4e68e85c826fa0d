"""
The load scenarios, each a coroutine that drives one server and returns its figures as a dict.

- `steady`: rooms of two, a fixed total rate of signals, open loop; latency and losses.
- `burst`: pairs whose sender sends signals back to back; messages per second delivered.
- `churn`: a crowd that connects and leaves, half closing cleanly and half dropping the TCP
  connection; run before a second `burst` to see what it left behind.
- `idle`: the server's resident memory per connected, idle, pinging socket.
- `storm`: joiners arriving all at once into larger rooms, each negotiating with everyone there.

None of them knows which server it drives: they take a port and the rooms to join (with a session
per seat where the server needs one).
"""

import asyncio
import contextlib
import gc
import itertools
import math
import time
from collections import Counter

from bench import procfs
from bench.clients import PING_EVERY, Peer, candidate, close_all, description, join_all, stamp
from bench.servers import Room

# Candidates a browser trickles for one peer connection in the storm.
STORM_CANDIDATES = 5


def percentile(ordered: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of an ordered list."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def seats(rooms: list[Room]) -> list[tuple[str, str | None]]:
    return [(room.slug, session) for room in rooms for session in room.sessions]


def health(peers: list[Peer]) -> dict:
    """What went wrong on the clients' side: error codes received, closes they did not ask for."""
    errors: Counter = Counter()
    for peer in peers:
        errors.update(peer.errors)
    closes = Counter(peer.close_code for peer in peers if peer.closed_by_server)
    return {"errors": dict(errors), "closed_by_server": {str(k): n for k, n in closes.items()}}


async def join_pairs(
    port: int | list[int], rooms: list[Room], **callbacks
) -> tuple[list[Peer], float]:
    """
    Join rooms of two, make the two of each room partners, and wait until each knows the other
    is there (which is when a page may signal it); return them, in seat order, and the time.
    """
    started = time.perf_counter()
    peers = await join_all(port, seats(rooms), **callbacks)
    for first, second in zip(peers[::2], peers[1::2], strict=True):
        first.partner, second.partner = second.id, first.id
    async with asyncio.timeout(60):
        await asyncio.gather(*(peer.wait_to_meet(peer.partner) for peer in peers))
    return peers, time.perf_counter() - started


async def wait_for(event: asyncio.Event, seconds: float) -> bool:
    """Wait for the event, at most `seconds`; return whether it happened."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


def keep_alive(peers: list[Peer]) -> None:
    """Ping from every peer every PING_EVERY seconds, spread evenly over the period."""
    for index, peer in enumerate(peers):
        peer.keep_alive(first_after=PING_EVERY * index / len(peers))


async def warm_up(port: int, room: Room) -> None:
    """Have one pair meet and exchange a signal, so nothing is loaded on first use later."""
    got_it = asyncio.Event()
    peers, _ = await join_pairs(port, [room], on_signal=lambda peer, message, at: got_it.set())
    await peers[0].signal(peers[0].partner, description("offer", 0, time.perf_counter_ns()))
    async with asyncio.timeout(30):
        await got_it.wait()
    await close_all(peers)


async def steady(
    port: int | list[int],
    pid: int | list[int],
    rooms: list[Room],
    *,
    rate: float,
    warmup: float,
    duration: float,
    drain: float,
) -> dict:
    """
    Send `rate` signals per second in all, open loop: signal k is due at k / rate seconds, from
    socket k mod N to its partner, whatever the replies do (a late reply delays no later send).
    Latency is from the send to the partner reading it. Signals due in the first `warmup` seconds
    are not counted; those due in the next `duration` are, and those not read `drain` seconds
    after the last send are lost.
    """
    latencies: dict[int, int] = {}  # sequence -> ns
    measured: set[int] = set()
    unread: set[int] = set()  # measured, not read yet
    all_read = asyncio.Event()  # set when the sending is over and nothing measured is unread
    sending_over = False
    misrouted = 0

    def on_signal(peer: Peer, message: dict, read_at: int) -> None:
        nonlocal misrouted
        _kind, sequence, sent_ns = stamp(message["data"])
        latencies[sequence] = read_at - sent_ns
        unread.discard(sequence)
        if sending_over and not unread:
            all_read.set()
        if message["from"] != peer.partner:
            misrouted += 1

    peers, connect_seconds = await join_pairs(port, rooms, on_signal=on_signal)
    keep_alive(peers)
    # Everything the crowd holds is long-lived: keep the collector from walking it mid-run.
    gc.collect()
    gc.freeze()

    sockets = len(peers)
    start = time.perf_counter() + 0.5
    measured_from = start + warmup
    end = measured_from + duration
    lags: list[float] = []

    async def send_from(index: int, peer: Peer) -> None:
        to = peer.partner
        for round_ in itertools.count():
            sequence = index + round_ * sockets
            due = start + sequence / rate
            if due >= end:
                return
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_ns = time.perf_counter_ns()
            lags.append(sent_ns / 1e9 - due)
            if due >= measured_from:
                measured.add(sequence)
                unread.add(sequence)
            await peer.signal(to, description("offer", sequence, sent_ns))

    cpu_before = None

    async def note_cpu_at_measuring() -> None:
        nonlocal cpu_before
        await asyncio.sleep(max(0.0, measured_from - time.perf_counter()))
        cpu_before = procfs.cpu_seconds(pid)

    await asyncio.gather(note_cpu_at_measuring(), *map(send_from, range(sockets), peers))
    server_cpu = (procfs.cpu_seconds(pid) - cpu_before) / max(
        time.perf_counter() - measured_from, 1e-9
    )
    sending_over = True
    if not unread:
        all_read.set()
    await wait_for(all_read, drain)
    received = sorted(latencies[sequence] / 1e6 for sequence in measured if sequence in latencies)
    figures = {
        "sockets": sockets,
        "rate": rate,
        "measured_seconds": duration,
        "sent": len(measured),
        "received": len(received),
        "lost": len(measured) - len(received),
        "p50_ms": percentile(received, 0.50),
        "p99_ms": percentile(received, 0.99),
        "max_ms": received[-1] if received else math.nan,
        "misrouted": misrouted,
        "connect_seconds": connect_seconds,
        "server_cpu": server_cpu,
        "send_lag_p99_ms": percentile(sorted(lags), 0.99) * 1000,
        "pongs": sum(peer.pongs for peer in peers),
        **health(peers),
    }
    await close_all(peers)
    gc.unfreeze()
    return figures


async def burst(port: int, rooms: list[Room], *, signals: int, patience: float = 60.0) -> dict:
    """
    In each room of two, one side sends `signals` signals back to back to the other, all rooms at
    once; messages per second = delivered / (last read - first send).
    """
    read_times: list[int] = []
    latencies: list[int] = []
    expected = len(rooms) * signals
    all_read = asyncio.Event()

    def on_signal(peer: Peer, message: dict, read_at: int) -> None:
        read_times.append(read_at)
        latencies.append(read_at - stamp(message["data"])[2])
        if len(read_times) >= expected:
            all_read.set()

    peers, _ = await join_pairs(port, rooms, on_signal=on_signal)
    senders = peers[::2]

    async def send_all(peer: Peer) -> None:
        to = peer.partner
        for sequence in range(signals):
            await peer.signal(to, description("offer", sequence, time.perf_counter_ns()))

    first_send = time.perf_counter_ns()
    await asyncio.gather(*map(send_all, senders))
    await wait_for(all_read, patience)
    delivered = len(read_times)
    elapsed = (max(read_times) - first_send) / 1e9 if read_times else math.nan
    ordered = sorted(latency / 1e6 for latency in latencies)
    figures = {
        "pairs": len(senders),
        "signals_each": signals,
        "sent": expected,
        "delivered": delivered,
        "lost": expected - delivered,
        "seconds": elapsed,
        "msgs_per_s": delivered / elapsed if read_times else 0.0,
        "p50_ms": percentile(ordered, 0.5),
        "max_ms": ordered[-1] if ordered else math.nan,
        **health(peers),
    }
    await close_all(peers)
    return figures


async def churn(port: int, rooms: list[Room]) -> dict:
    """Connect a crowd, then have half of it close cleanly and half drop the TCP connection."""
    started = time.perf_counter()
    peers = await join_all(port, seats(rooms))
    connected = time.perf_counter() - started
    figures = {"sockets": len(peers), "connect_seconds": connected, **health(peers)}
    await asyncio.gather(
        *(peer.close() if index % 2 == 0 else peer.drop() for index, peer in enumerate(peers)),
        return_exceptions=True,
    )
    figures["clean_closes"] = len(peers[::2])
    figures["dropped"] = len(peers[1::2])
    return figures


async def idle(port: int, pid: int, rooms: list[Room], *, seconds: float) -> dict:
    """
    Read the server's resident memory, connect a crowd that then only pings for `seconds`, and
    read it again: the growth per socket is what one idle call member costs the server.
    """
    rss_before = procfs.rss_kib(pid)
    peers, connect_seconds = await join_pairs(port, rooms)
    keep_alive(peers)
    await asyncio.sleep(seconds)
    rss_after = procfs.rss_kib(pid)
    figures = {
        "sockets": len(peers),
        "idle_seconds": seconds,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "kib_per_socket": (rss_after - rss_before) / len(peers),
        "still_open": sum(peer.close_code is None for peer in peers),
        "pongs": sum(peer.pongs for peer in peers),
        "connect_seconds": connect_seconds,
        **health(peers),
    }
    await close_all(peers)
    return figures


async def storm(port: int, rooms: list[Room], *, patience: float = 60.0) -> dict:
    """
    Everyone joins at once. Each joiner, on its welcome, sends an offer and STORM_CANDIDATES
    candidates to every peer the welcome lists; whoever receives an offer answers it and sends as
    many candidates back. Measure from the first connect to the last of these signals read.
    """
    sent: set[tuple] = set()  # (from, to, kind, number)
    unread: set[tuple] = set()  # sent, not read yet
    read: dict[tuple, int] = {}  # read, at perf_counter_ns
    sending: set[asyncio.Task] = set()
    offered: Counter = Counter()  # unordered pair -> offers made
    everyone_in = False  # every joiner has its welcome
    settled = asyncio.Event()  # everyone is in, and everything sent is read

    def check_settled(*_args) -> None:
        if everyone_in and not sending and not unread:
            settled.set()

    def negotiate(peer: Peer, to: str, kind: str) -> None:
        async def send() -> None:
            for key, data in [((peer.id, to, kind, 0), description(kind, 0, 0))] + [
                ((peer.id, to, "candidate", number), candidate(number))
                for number in range(STORM_CANDIDATES)
            ]:
                sent.add(key)
                unread.add(key)
                await peer.signal(to, data)

        task = asyncio.create_task(send())
        sending.add(task)
        task.add_done_callback(sending.discard)
        task.add_done_callback(check_settled)

    def on_welcome(peer: Peer) -> None:
        for other in peer.welcome["peers"]:
            offered[frozenset((peer.id, other["id"]))] += 1
            negotiate(peer, other["id"], "offer")

    def on_signal(peer: Peer, message: dict, read_at: int) -> None:
        kind, number, _sent_ns = stamp(message["data"])
        key = (message["from"], peer.id, kind, number)
        read[key] = read_at
        unread.discard(key)
        if kind == "offer":
            negotiate(peer, message["from"], "answer")
        check_settled()

    started = time.perf_counter_ns()
    everyone = seats(rooms)
    peers = await join_all(
        port,
        everyone,
        at_once=len(everyone),
        on_signal=on_signal,
        on_welcome=on_welcome,
        give_up_after=patience,
    )
    everyone_in = True
    check_settled()
    await wait_for(settled, patience)
    delivered = [read[key] for key in sent if key in read]
    pairs = sum(len(room.sessions) * (len(room.sessions) - 1) // 2 for room in rooms)
    figures = {
        "joiners": len(peers),
        "rooms": len(rooms),
        "seconds": (max(delivered) - started) / 1e9 if delivered else math.nan,
        "signals": len(sent),
        "lost": len(sent) - len(delivered),
        "pairs_expected": pairs,
        "pairs_negotiated": len(offered),
        "pairs_offered_twice": sum(count > 1 for count in offered.values()),
        "unexpected_signals": len(read.keys() - sent),
        **health(peers),
    }
    await close_all(peers)
    return figures
