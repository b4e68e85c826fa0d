"""
What a browser spends in a call of six: CPU and outgoing video bitrate, mesh against the SFU.

    python -m bench.sfu_browsers [--modes mesh,sfu] [--people 6] [--height 720]
                                 [--settle 10] [--window 10] [--quick] [--json PATH]

The site runs as the browser tests run it (tests/live_site.py: daphne, SQLite) with JANUS_URL and
JANUS_API_SECRET set for a Janus of the run's own (tests/conftest.py's JanusServer configuration);
both on core 0 where the machine has two cores. Two rooms of the same people: one with
media="mesh", one with media="sfu". For each mode in turn, six people, each in a Chromium process
of their own (/usr/bin/chromium launched as tests/browser/conftest.py launches it: fake devices,
a moving test pattern as the camera; the page asks for 1280×720), open the call page and press
Join one after the other. Once every page shows the five others' videos, the call settles for
`settle` seconds and is measured for `window` seconds:

- each browser's CPU: the CPU time of its whole process tree (browser, GPU, renderer, utility
  processes) from /proc, over the window, as a share of one core;
- its outgoing video bitrate: the bytesSent of every outbound-rtp video stream of every
  RTCPeerConnection of the page (an init script keeps a list of them), over the window; with the
  frame size and rate it sends, and what WebRTC says limits it (qualityLimitationReason);
- the frames per second it decodes from the others (inbound-rtp framesDecoded);
- how busy the whole machine was (/proc/stat): six browsers on two cores saturate it, and then a
  browser's CPU is its share of a saturated machine, and the encoders lower their resolution (the
  qualityLimitationReason says "cpu"). The output says when that happened.

The table gives the median browser of each mode. `--height 360` asks the camera for 640×360
instead, the variant for a machine where 720p cannot settle.

The page's SFU path is new: the sfu mode runs only when /work/sfu-page-ready exists (or with
--force-sfu); until then the scenario runs the mesh alone and says so.
"""

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import procfs

SFU_PAGE_READY = Path("/work/sfu-page-ready")
SERVER_CORE = 0
VIEWPORT = {"width": 1280, "height": 720}
TIMEOUT_MS = 60_000
JOIN_BUTTON = "#join-button"
REMOTE_VIDEOS = "#tiles .tile:not(.tile-self) video"
# The machine is saturated when its cores were this busy over the window.
SATURATED = 0.9

# Installed in every page before its own scripts: keep every RTCPeerConnection the page makes,
# and (for a smaller variant) ask the camera for another size than the page does.
PROBE = """
(() => {
  const HEIGHT = %(height)d;
  const Native = window.RTCPeerConnection;
  const connections = [];
  window.__benchConnections = connections;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); connections.push(this); }
  };
  if (HEIGHT && navigator.mediaDevices) {
    const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    navigator.mediaDevices.getUserMedia = (constraints) => {
      if (constraints && constraints.video) {
        const video = typeof constraints.video === 'object' ? constraints.video : {};
        const width = {ideal: Math.round(HEIGHT * 16 / 9)}, height = {ideal: HEIGHT};
        constraints = {...constraints, video: {...video, width, height}};
      }
      return getUserMedia(constraints);
    };
  }
})();
"""

# Sum what the page's connections sent and decoded so far; describe its outgoing video.
STATS = """async () => {
  let bytesSent = 0, framesDecoded = 0, inbound = 0;
  const outbound = [];
  for (const pc of window.__benchConnections || []) {
    if (pc.connectionState === 'closed') continue;
    let report;
    try { report = await pc.getStats(); } catch (error) { continue; }
    for (const stats of report.values()) {
      if (stats.type === 'outbound-rtp' && stats.kind === 'video') {
        bytesSent += stats.bytesSent || 0;
        outbound.push({width: stats.frameWidth || 0, height: stats.frameHeight || 0,
                       fps: stats.framesPerSecond || 0, rid: stats.rid || '',
                       limit: stats.qualityLimitationReason || ''});
      } else if (stats.type === 'inbound-rtp' && stats.kind === 'video') {
        framesDecoded += stats.framesDecoded || 0;
        inbound += 1;
      }
    }
  }
  const open = (window.__benchConnections || []).filter((pc) => pc.connectionState !== 'closed');
  return {bytesSent, framesDecoded, inbound, outbound, connections: open.length,
          now: performance.now()};
}"""

# How many remote videos show a picture.
PLAYING = """(selector) => [...document.querySelectorAll(selector)]
  .filter((video) => video.videoWidth > 0 && !video.paused).length"""


# -- processes -------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """Return the process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    tree, queue = [], [root]
    while queue:
        pid = queue.pop()
        tree.append(pid)
        queue.extend(children.get(pid, []))
    return tree


def find_process(marker: str) -> int:
    """Return the pid of the process whose command line holds this argument."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                arguments = cmdline.read().split(b"\0")
        except OSError:
            continue
        if marker.encode() in arguments:
            return int(entry)
    raise LookupError(f"no process with {marker} on its command line")


def tree_cpu(root: int) -> dict[int, float]:
    times = {}
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            times[pid] = procfs.cpu_seconds(pid)
    return times


def cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the tree used between two samples, processes that came or went included."""
    return sum(after.get(pid, before.get(pid, 0.0)) - before.get(pid, 0.0) for pid in before) + sum(
        seconds for pid, seconds in after.items() if pid not in before
    )


def machine_busy_seconds() -> tuple[float, float]:
    """Return (busy, total) CPU seconds of the whole machine since boot."""
    with open("/proc/stat") as stat:
        ticks = [int(field) for field in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks[:8]) - idle) / procfs.CLOCK_TICKS, sum(ticks[:8]) / procfs.CLOCK_TICKS


# -- the call ------------------------------------------------------------------------------------


class Browser:
    """One person: a Chromium process of their own, one context, the call page."""

    def __init__(self, playwright, features: str, marker: str, *, cookies, height: int):
        from tests.browser.conftest import GRANT_MEDIA, launch_chromium

        self.marker = marker
        self.browser = launch_chromium(playwright, features, GRANT_MEDIA, marker)
        self.pid = find_process(marker)
        self.context = self.browser.new_context(viewport=VIEWPORT)
        self.context.add_cookies(cookies)
        self.context.add_init_script(PROBE % {"height": height})
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)

    def join(self, url: str) -> None:
        self.page.goto(url)
        self.page.wait_for_selector(f"{JOIN_BUTTON}:enabled")
        self.page.locator(JOIN_BUTTON).click()

    def playing(self) -> int:
        return self.page.evaluate(PLAYING, REMOTE_VIDEOS)

    def stats(self) -> dict:
        return self.page.evaluate(STATS)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.browser.close()


def wait_for_everyone(browsers: list[Browser], others: int, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while True:
        playing = [browser.playing() for browser in browsers]
        if all(count >= others for count in playing) or time.monotonic() > deadline:
            return playing
        time.sleep(0.5)


def call(
    playwright,
    features: str,
    *,
    mode: str,
    url: str,
    cookies: list[list[dict]],
    height: int,
    settle: float,
    window: float,
    say,
) -> dict:
    """Six people (or as many as cookies) in one call; return each browser's figures."""
    browsers: list[Browser] = []
    try:
        for index, jar in enumerate(cookies):
            marker = f"--bench-person={mode}-{index}-{os.getpid()}"
            browser = Browser(playwright, features, marker, cookies=jar, height=height)
            browsers.append(browser)
            browser.join(url)
        others = len(browsers) - 1
        playing = wait_for_everyone(browsers, others, TIMEOUT_MS / 1000)
        if not all(count >= others for count in playing):
            return {"error": f"not every page showed {others} videos: {playing}"}
        time.sleep(settle)
        # The pages' stats take a while to gather on a busy machine: the CPU (read from /proc
        # at once) has a window of its own, and each page's stats one on the page's clock.
        stats_before = [browser.stats() for browser in browsers]
        started = time.monotonic()
        cpu_before = [tree_cpu(browser.pid) for browser in browsers]
        busy_before, total_before = machine_busy_seconds()
        time.sleep(window)
        cpu_after = [tree_cpu(browser.pid) for browser in browsers]
        busy_after, total_after = machine_busy_seconds()
        seconds = time.monotonic() - started
        stats_after = [browser.stats() for browser in browsers]
        cores = os.cpu_count() or 1
        busy = (busy_after - busy_before) / max(total_after - total_before, 1e-9)
        people = []
        for index in range(len(browsers)):
            before, after = stats_before[index], stats_after[index]
            span = (after["now"] - before["now"]) / 1000 or seconds
            people.append(
                {
                    "cpu": round(cpu_between(cpu_before[index], cpu_after[index]) / seconds, 3),
                    "video_kbps_out": round(
                        (after["bytesSent"] - before["bytesSent"]) * 8 / span / 1000
                    ),
                    "decoded_fps_in": round(
                        (after["framesDecoded"] - before["framesDecoded"]) / span, 1
                    ),
                    "connections": after["connections"],
                    "outbound": after["outbound"],
                }
            )
        figures = {
            "people": people,
            "processes_per_browser": [len(process_tree(b.pid)) for b in browsers],
            "seconds": round(seconds, 2),
            "machine_busy": round(busy, 3),
            "machine_cores": cores,
            "saturated": busy >= SATURATED,
            "load_average": procfs.load_average(),
        }
        figures |= medians(people)
        say(line(mode, figures))
        return figures
    finally:
        for browser in browsers:
            browser.close()


def medians(people: list[dict]) -> dict:
    limits = [o["limit"] for p in people for o in p["outbound"] if o["limit"]]
    sizes = [f"{o['width']}x{o['height']}" for p in people for o in p["outbound"] if o["width"]]
    return {
        "cpu_median": statistics.median(p["cpu"] for p in people),
        "video_kbps_out_median": statistics.median(p["video_kbps_out"] for p in people),
        "decoded_fps_in_median": statistics.median(p["decoded_fps_in"] for p in people),
        "sent_sizes": sorted(set(sizes)),
        "quality_limited_by": sorted(set(limits) - {"none"}),
    }


def line(mode: str, figures: dict) -> str:
    text = (
        f"sfu-browsers, {mode}: median browser {figures['cpu_median']:.0%} of a core, "
        f"{figures['video_kbps_out_median']:.0f} kbit/s of video out, decoding "
        f"{figures['decoded_fps_in_median']:.0f} frames/s in all; sending "
        f"{', '.join(figures['sent_sizes']) or 'nothing'}; machine {figures['machine_busy']:.0%} "
        "busy"
    )
    if figures["saturated"]:
        text += " — SATURATED: the CPU figures are shares of a saturated machine"
    if figures["quality_limited_by"]:
        text += f"; encoders limited by {', '.join(figures['quality_limited_by'])}"
    return text


# -- servers -------------------------------------------------------------------------------------

SEED = """
from tests.factories import RoomFactory, UserFactory

owner = UserFactory(username="olga", display_name="Olga")
people = [owner] + [
    UserFactory(username=f"person{n}", display_name=f"Person {n}") for n in range(1, PEOPLE)
]
rooms = {}
for media in ("mesh", "sfu"):
    room = RoomFactory(owner=owner, name=f"Six {media}", access="members")
    room.media, room.max_participants = media, max(PEOPLE, 6)
    room.save()
    rooms[media] = room.slug
print(json.dumps({"rooms": rooms, "sessions": [session_for(person) for person in people]}))
"""


def measure(
    run_dir: Path,
    *,
    modes: tuple[str, ...] = ("mesh", "sfu"),
    people: int = 6,
    height: int = 720,
    settle: float = 10,
    window: float = 10,
    force_sfu: bool = False,
    say=print,
) -> dict:
    """Run the call of `people` in each mode; return the figures of each."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "conference.settings")
    import django

    django.setup()
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    from bench.sfu_room import janus_server, on_core
    from tests.browser.conftest import disabled_features_of
    from tests.live_site import SESSIONS, LiveSite

    results: dict = {
        "people": people,
        "camera": f"Chromium's fake camera, asked for {round(height * 16 / 9)}x{height}",
        "load_average_before": procfs.load_average(),
    }
    ready = force_sfu or SFU_PAGE_READY.exists()
    if "sfu" in modes and not ready:
        modes = tuple(mode for mode in modes if mode != "sfu")
        results["sfu"] = {"skipped": f"{SFU_PAGE_READY} does not exist: the page's SFU path"}
        say(f"sfu-browsers: sfu skipped, {SFU_PAGE_READY} does not exist yet")
    run_dir.mkdir(parents=True, exist_ok=True)
    everything = set(range(os.cpu_count() or 1))
    mine = os.sched_getaffinity(0)
    started = time.monotonic()
    with janus_server(run_dir / "janus") as janus:
        site = LiveSite(run_dir, JANUS_URL=janus.url, JANUS_API_SECRET=janus.api_secret)
        seeded = site.run(f"PEOPLE = {people}\n" + SESSIONS + SEED)
        with on_core(SERVER_CORE):
            base = f"http://127.0.0.1:{site.start()}"
        cookies = [[{"name": "sessionid", "value": key, "url": base}] for key in seeded["sessions"]]
        try:
            # Playwright's driver and every Chromium get the whole machine.
            os.sched_setaffinity(0, everything)
            with sync_playwright() as playwright:
                features = disabled_features_of(playwright)
                for mode in modes:
                    procfs.wait_for_quiet_machine(everything, busy_below=0.3, timeout=30)
                    try:
                        results[mode] = call(
                            playwright,
                            features,
                            mode=mode,
                            url=f"{base}/rooms/{seeded['rooms'][mode]}/call/",
                            cookies=cookies,
                            height=height,
                            settle=settle,
                            window=window,
                            say=say,
                        )
                    except (PlaywrightError, LookupError) as error:
                        message = getattr(error, "message", str(error)).splitlines()[0]
                        results[mode] = {"error": f"{type(error).__name__}: {message}"}
                        say(f"sfu-browsers, {mode}: {results[mode]['error']}")
        finally:
            os.sched_setaffinity(0, mine)
            site.stop_all()
    results["site_log_dir"] = str(run_dir)
    results["seconds"] = round(time.monotonic() - started, 1)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sfu_browsers", description=__doc__)
    parser.add_argument("--modes", default="mesh,sfu")
    parser.add_argument("--people", type=int, default=6)
    parser.add_argument("--height", type=int, default=720, help="camera height asked: 720, 360")
    parser.add_argument("--settle", type=float, default=10)
    parser.add_argument("--window", type=float, default=10)
    parser.add_argument("--force-sfu", action="store_true", help=f"even without {SFU_PAGE_READY}")
    parser.add_argument("--quick", action="store_true", help="3 people, short windows")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.people, args.settle, args.window = 3, 2, 3
    results = measure(
        Path(tempfile.mkdtemp(prefix="bench-sfu-browsers-")),
        modes=tuple(args.modes.split(",")),
        people=args.people,
        height=args.height,
        settle=args.settle,
        window=args.window,
        force_sfu=args.force_sfu,
        say=lambda text: print(text, flush=True),
    )
    text = json.dumps(results, indent=2, default=str)
    if args.json:
        args.json.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
