"""
Join time in Chromium: from pressing Join to the first frame of the remote video.

Two browser contexts each time: a person already in the call, and a newcomer who presses Join.
The time is taken inside the newcomer's page, on its own clock: from the click on the Join button
(a capture-phase listener on window notes it before any of the page's own listeners run) to the
first frame the remote <video> presents (requestVideoFrameCallback).

- **site**: both open the real call page of a LiveSite (daphne, SQLite, the in-memory channel
  layer, as the browser tests run it). The newcomer's pre-join screen already has the camera open,
  as a person sees it, and the other person is in the call, when the newcomer presses Join.
- **relay**: both open bench/static/baseline.html, the least a page can do: on Join it opens the
  camera (getUserMedia is inside the measured time here), connects to the bare relay
  (bench/relay.py), and makes the call with the same roles (the newcomer offers) and trickled
  candidates, one RTCPeerConnection per peer.

Both pages leave the same performance marks (static/js/signaling.js and peer.js on the site), and
they make the breakdown: when each step was first reached, in ms after the click, on the
newcomer's clock; the other person's marks ("other:...") are moved onto it through the pages'
timeOrigin. The steps: media:open (the baseline's getUserMedia), signaling:open (the websocket is
open), signaling:welcome, peer:offer-created (setLocalDescription resolved), peer:offer-sent,
other:peer:offer-received, other:peer:answer-sent, peer:answer-received, peer:track,
peer:ice-connected, peer:connected, first-frame. Any other mark a page leaves (while looking into
something) is listed too, in the order it happens.

Every run opens fresh contexts for both people. The runs of a round (the site, the relay, and any
variant of the site's scripts given with --scripts) go in turns whose order rotates from round to
round, each after the machine is quiet (this is a shared machine), so that drift reaches all of
them alike. The camera is Chromium's fake one playing a 320 x 240 picture from a file, the same
for both pages. Pinning, on a machine with two cores: the servers (daphne, the relay, and this
process with its static file server) on core 0, as in the rest of bench/; Chromium on both.

    python -m bench.join_time [--repeats N] [--scripts NAME=DIR ...] [--json]

--scripts NAME=DIR measures the site's call page once more in each round with the files of DIR
(call.js, peer.js, ...) in place of those of static/js/: the page before and after a change, in
the same run.
"""

import argparse
import contextlib
import functools
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "conference.settings")
django.setup()

from playwright.sync_api import Error as PlaywrightError  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser.conftest import (  # noqa: E402
    GRANT_MEDIA,
    disabled_features_of,
    launch_chromium,
)
from tests.conftest import BASE_DIR, free_port, wait_for_port  # noqa: E402
from tests.live_site import LiveSite, seed_call  # noqa: E402

STATIC = Path(__file__).resolve().parent / "static"
SERVER_CORE = 0
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 30_000
# A person takes a moment between seeing the pre-join screen and pressing Join; the page's start-up
# work (devices, the people in the call) is over by then.
SETTLE_S = 1.0
# Before each run, wait (up to QUIET_TIMEOUT_S) until the machine is this busy at most.
QUIET_BELOW = 0.25
QUIET_TIMEOUT_S = 60.0

JOIN_BUTTON = "#join-button"
SITE_REMOTE_VIDEO = "#tiles .tile:not(.tile-self) video"
BASELINE_REMOTE_VIDEO = "video#remote"

# Installed in every page before its own scripts.
PROBE = """
(() => {
  const JOIN = %(join)s, REMOTE_VIDEO = %(remote)s;
  window.addEventListener('click', (event) => {
    if (event.target instanceof Element && event.target.closest(JOIN)) {
      performance.mark('bench:join-click');
    }
  }, {capture: true});
  const watched = new WeakSet();
  const watch = () => {
    for (const video of document.querySelectorAll(REMOTE_VIDEO)) {
      if (watched.has(video)) continue;
      watched.add(video);
      video.requestVideoFrameCallback((now) => {
        if (!performance.getEntriesByName('bench:first-frame').length) {
          performance.mark('bench:first-frame', {startTime: now});
        }
      });
    }
  };
  new MutationObserver(watch).observe(document, {childList: true, subtree: true});
})();
"""

MARKS = """() => ({
    timeOrigin: performance.timeOrigin,
    marks: performance.getEntriesByType('mark').map((mark) => [mark.name, mark.startTime]),
})"""

HAS_MARK = "(name) => performance.getEntriesByName(name).length > 0"


def y4m_video(path: Path, *, width=320, height=240, fps=30, frames=60) -> Path:
    """Write a moving test picture for Chromium's fake camera: small, and cheap to encode."""
    chroma = bytes([128]) * (width // 2 * height // 2)
    with path.open("wb") as video:
        video.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in range(frames):
            bar = frame * width // frames
            row = bytes(
                235 if bar <= x < bar + width // 8 else 16 + (x * 200 // width)
                for x in range(width)
            )
            video.write(b"FRAME\n" + row * height + chroma + chroma)
    return path


def cpu_busy(interval: float = 0.5) -> float:
    """Return how busy the machine's CPUs were over `interval` seconds, from 0 to 1."""

    def idle_and_total() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            ticks = [int(field) for field in stat.readline().split()[1:]]
        return ticks[3] + ticks[4], sum(ticks)  # idle and iowait, everything

    idle_before, total_before = idle_and_total()
    time.sleep(interval)
    idle_after, total_after = idle_and_total()
    return 1 - (idle_after - idle_before) / max(total_after - total_before, 1)


def wait_until_quiet() -> float:
    """Wait until the machine is quiet, or QUIET_TIMEOUT_S; return how busy it was last."""
    deadline = time.monotonic() + QUIET_TIMEOUT_S
    busy = cpu_busy()
    while busy > QUIET_BELOW and time.monotonic() < deadline:
        busy = cpu_busy()
    return busy


def serve_static(directory: Path) -> tuple[http.server.ThreadingHTTPServer, int]:
    """Serve the baseline page from a thread of this process, on a free port."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {
            **http.server.SimpleHTTPRequestHandler.extensions_map,
            ".js": "text/javascript",
        }

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(directory))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


@contextlib.contextmanager
def relay_process(port: int):
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.relay", "--port", str(port)],
        cwd=BASE_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=30)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


def launch(playwright, camera: Path):
    """Launch Chromium as tests/browser/conftest.py does, with a small picture for the camera."""
    return launch_chromium(
        playwright,
        disabled_features_of(playwright),
        GRANT_MEDIA,
        f"--use-file-for-fake-video-capture={camera}",
    )


class Person:
    """One person's browser context and page, with the probe installed."""

    def __init__(self, browser, *, remote_video: str, cookies: list, scripts: Path | None):
        self.context = browser.new_context(viewport=VIEWPORT)
        self.context.add_cookies(cookies)
        probe = PROBE % {"join": json.dumps(JOIN_BUTTON), "remote": json.dumps(remote_video)}
        self.context.add_init_script(probe)
        if scripts is not None:
            self.context.route("**/static/js/*.js", functools.partial(self.serve, scripts))
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)

    @staticmethod
    def serve(scripts: Path, route) -> None:
        """Answer for a script of static/js/ with the file of that name in `scripts`, if any."""
        replacement = scripts / Path(urlsplit(route.request.url).path).name
        if replacement.is_file():
            route.fulfill(path=replacement, content_type="text/javascript")
        else:
            route.continue_()

    def open(self, url: str) -> None:
        self.page.goto(url)
        self.page.wait_for_selector(f"{JOIN_BUTTON}:enabled")

    def join(self) -> None:
        self.page.locator(JOIN_BUTTON).click()

    def wait_for_mark(self, name: str) -> None:
        self.page.wait_for_function(HAS_MARK, arg=name, timeout=TIMEOUT_MS)

    def marks(self) -> dict:
        return self.page.evaluate(MARKS)

    def close(self) -> None:
        self.context.close()


def timeline(newcomer: dict, other: dict) -> dict[str, float]:
    """Return each step's first mark after the click, in ms after it, on the newcomer's clock."""
    click = max(t for name, t in newcomer["marks"] if name == "bench:join-click")
    shift = other["timeOrigin"] - newcomer["timeOrigin"]
    steps: dict[str, float] = {}
    for prefix, page, offset in (("", newcomer, 0.0), ("other:", other, shift)):
        for name, t in page["marks"]:
            step = prefix + name.removeprefix("bench:")
            if t + offset >= click and step not in steps and name != "bench:join-click":
                steps[step] = t + offset - click
    return steps


def join_once(browser, *, url: str, remote_video: str, cookies=([], []), scripts=None) -> dict:
    """Let the first person join, then the newcomer; return the newcomer's timeline."""
    first = Person(browser, remote_video=remote_video, cookies=cookies[0], scripts=scripts)
    newcomer = Person(browser, remote_video=remote_video, cookies=cookies[1], scripts=scripts)
    try:
        first.open(url)
        first.join()
        first.wait_for_mark("signaling:welcome")
        newcomer.open(url)
        time.sleep(SETTLE_S)
        newcomer.join()
        newcomer.wait_for_mark("bench:first-frame")
        return timeline(newcomer.marks(), first.marks())
    finally:
        newcomer.close()
        first.close()


def measure(repeats: int = 10, *, scripts: dict[str, Path] | None = None) -> dict:
    """
    Measure the join time through the site and through the bare relay, `repeats` times each.

    Return {"relay_ms": [...], "site_ms": [...], "breakdown": {"site": {step: [...]}, "relay":
    {step: [...]}}, "busy": [...], "failed": [...]}: the join times, when each step of each run was
    reached (ms after the click), how busy the machine was before each round (0 to 1), and the
    runs that failed (they count for nothing). Each `scripts`
    entry NAME: DIR adds "site NAME_ms" and breakdown["site NAME"]: the site's page with the
    scripts of DIR.
    """
    scripts = scripts or {}
    kinds = ["site", *(f"site {name}" for name in scripts), "relay"]
    results: dict = {f"{kind}_ms": [] for kind in kinds}
    results |= {"breakdown": {kind: {} for kind in kinds}, "busy": [], "failed": []}
    everything = os.sched_getaffinity(0)
    with tempfile.TemporaryDirectory(prefix="join-time-") as scratch:
        directory = Path(scratch)
        # The servers inherit this process's pinning.
        if len(everything) > 1:
            os.sched_setaffinity(0, {SERVER_CORE})
        site = LiveSite(directory)
        seeded = seed_call(site, "ann")
        site_url = f"http://127.0.0.1:{site.start()}"
        relay_port = free_port()
        static_server, static_port = serve_static(STATIC)
        cookies = [
            [{"name": "sessionid", "value": seeded["sessions"][name], "url": site_url}]
            for name in ("olga", "ann")
        ]
        try:
            with contextlib.ExitStack() as stack:
                stack.enter_context(relay_process(relay_port))
                # Playwright's driver, and Chromium that it starts, inherit the whole machine.
                os.sched_setaffinity(0, everything)
                playwright = stack.enter_context(sync_playwright())
                browser = launch(playwright, y4m_video(directory / "camera.y4m"))
                if len(everything) > 1:
                    os.sched_setaffinity(0, {SERVER_CORE})
                site_run = functools.partial(
                    join_once,
                    browser,
                    url=f"{site_url}/rooms/{seeded['slug']}/call/",
                    remote_video=SITE_REMOTE_VIDEO,
                    cookies=cookies,
                )
                runs = {"site": site_run}
                runs |= {
                    f"site {name}": functools.partial(site_run, scripts=path)
                    for name, path in scripts.items()
                }
                for index in range(repeats + 1):  # the first round warms up and is not counted
                    runs["relay"] = functools.partial(
                        join_once,
                        browser,
                        url=f"http://127.0.0.1:{static_port}/baseline.html?relay="
                        f"ws://127.0.0.1:{relay_port}/ws/rooms/round-{index}/",
                        remote_video=BASELINE_REMOTE_VIDEO,
                    )
                    turn = index % len(kinds)
                    busy = []
                    for kind in kinds[turn:] + kinds[:turn]:
                        busy.append(wait_until_quiet())
                        try:
                            steps = runs[kind]()
                        except PlaywrightError as error:  # one run, not the whole measurement
                            results["failed"].append(f"{kind}: {error.message.splitlines()[0]}")
                            continue
                        if index == 0:
                            continue
                        results[f"{kind}_ms"].append(round(steps["first-frame"], 1))
                        for step, ms in steps.items():
                            results["breakdown"][kind].setdefault(step, []).append(round(ms, 1))
                    if index:
                        results["busy"].append(round(max(busy), 2))
                browser.close()
        finally:
            static_server.shutdown()
            site.stop_all()
            os.sched_setaffinity(0, everything)
    return results


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def steps_in_order(breakdown: dict) -> list[str]:
    """Return the steps of all pages in the order they happen (by the first page's median)."""
    medians: dict[str, float] = {}
    for kind in breakdown.values():
        for step, values in kind.items():
            medians.setdefault(step, statistics.median(values))
    return sorted(medians, key=medians.__getitem__)


def report(results: dict) -> str:
    kinds = [key.removesuffix("_ms") for key in results if key.endswith("_ms")]
    relay = statistics.median(results["relay_ms"])
    runs = len(results["relay_ms"])
    lines = [f"{'ms':16}{'median':>8}{'p90':>8}{'ratio':>8}   ({runs} runs each)"]
    for kind in kinds:
        values = results[f"{kind}_ms"]
        median = statistics.median(values)
        lines.append(f"{kind:16}{median:8.0f}{p90(values):8.0f}{median / relay:8.2f}")
    lines.append("ratio: the median over the relay's median")
    if results["failed"]:
        lines.append(f"{len(results['failed'])} runs failed: {results['failed']}")
    busy = results["busy"]
    lines.append(
        f"machine busy before the runs (0 to 1): median {statistics.median(busy):.2f}, "
        f"max {max(busy):.2f}"
    )
    breakdown = results["breakdown"]
    lines += ["", "step: median ms after the click" + "".join(f"{kind:>16}" for kind in kinds)]
    for step in steps_in_order(breakdown):
        cells = []
        for kind in kinds:
            values = breakdown[kind].get(step)
            cells.append(f"{statistics.median(values):16.0f}" if values else f"{'-':>16}")
        lines.append(f"{step:31}{''.join(cells)}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--scripts",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also measure the site with the scripts of DIR in place of static/js's",
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    options = parser.parse_args()
    scripts = {}
    for entry in options.scripts:
        name, _, path = entry.partition("=")
        scripts[name] = Path(path).resolve()
    results = measure(options.repeats, scripts=scripts)
    print(report(results))
    if options.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
