"""
Calls through the media server (docs/signaling.md, protocol 2): real Chromium windows and a real
Janus of the test session's own.

Each person sends their camera once, to Janus, in three simulcast layers, and receives everyone
else's from it on one more connection. The cameras are a video file of 960 × 540 at 10 frames a
second: the smallest from which Chromium sends all three layers (at 640 × 360 it leaves out the
highest), and slow enough for six renderers on the machine's two cores.
"""

import hashlib
import os
import re
import time

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import GRANT_MEDIA, launch_chromium
from tests.browser.pages import (
    MEDIA_TIMEOUT,
    PAGE_TIMEOUT,
    RECONNECT_TIMEOUT,
    chat_message,
    chat_messages,
    download,
    enter_call,
    expect_connection,
    expect_remote_audio_live,
    expect_remote_video_playing,
    expect_video_playing,
    send_chat,
    set_chat_open,
    transfers,
)
from tests.live_site import seed_call

pytestmark = pytest.mark.browser

CAMERA_WIDTH, CAMERA_HEIGHT, CAMERA_FPS = 960, 540, 10

# A person's own camera tile, not their screen's.
CAMERA_TILES = "#tiles .tile:not(.tile-self):not(.tile-screen)"
SCREEN_TILES = "#tiles .tile-screen"
ON_STAGE = re.compile(r"\bon-stage\b")


@pytest.fixture
def site(sfu_site):
    """Every site in this module has the media server."""
    return sfu_site


def write_y4m(path, frames: int = 20) -> None:
    """Write a looping Y4M video: a bright bar crossing a gradient, a new picture every frame."""
    width, height = CAMERA_WIDTH, CAMERA_HEIGHT
    backdrop = bytearray()
    for row in range(height):
        backdrop += bytes([60 + row * 80 // height]) * width
    chroma = bytes([128]) * (width * height // 2)
    bar = width // 8
    with path.open("wb") as video:
        video.write(f"YUV4MPEG2 W{width} H{height} F{CAMERA_FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in range(frames):
            luma = bytearray(backdrop)
            left = (width - bar) * frame // (frames - 1)
            for row in range(height // 4, 3 * height // 4):
                luma[row * width + left : row * width + left + bar] = bytes([220]) * bar
            video.write(b"FRAME\n" + luma + chroma)


@pytest.fixture(scope="module")
def camera_browser(playwright, playwright_disabled_features, tmp_path_factory):
    """Chromium whose fake camera shows the small video, granted without asking."""
    video = tmp_path_factory.mktemp("camera") / "camera.y4m"
    write_y4m(video)
    browser = launch_chromium(
        playwright,
        playwright_disabled_features,
        GRANT_MEDIA,
        f"--use-file-for-fake-video-capture={video}",
    )
    yield browser
    browser.close()


# Every RTCPeerConnection the page makes, for the test to read its statistics: the page's own
# scripts keep theirs to themselves.
KEEP_PEER_CONNECTIONS = """(() => {
    const Original = window.RTCPeerConnection;
    window.__peerConnections = [];
    window.RTCPeerConnection = class extends Original {
        constructor(...args) {
            super(...args);
            window.__peerConnections.push(this);
        }
    };
})();"""

# The video this page sends: per media source (a camera, a screen; not per simulcast layer), on
# every connection still open, the rids of the layers it sends. Only sources that sent something.
OUTGOING_VIDEO = """async () => {
    const sources = {};
    for (const [index, pc] of window.__peerConnections.entries()) {
        if (pc.connectionState === "closed") continue;
        const report = await pc.getStats();
        for (const stats of report.values()) {
            if (stats.type !== "outbound-rtp" || stats.kind !== "video") continue;
            const key = `${index}/${stats.mediaSourceId}`;
            sources[key] ??= {rids: [], bytesSent: 0};
            if (stats.rid) sources[key].rids.push(stats.rid);
            sources[key].bytesSent += stats.bytesSent ?? 0;
        }
    }
    return Object.values(sources).filter((source) => source.bytesSent > 0)
        .map((source) => source.rids.sort());
}"""


def join(person, browser, name: str, session: str, url: str):
    someone = person(name.title(), session, in_browser=browser)
    someone.context.add_init_script(KEEP_PEER_CONNECTIONS)
    enter_call(someone.page, url)
    return someone


def outgoing_video(page: Page) -> list[list[str]]:
    return page.evaluate(OUTGOING_VIDEO)


def expect_outgoing_video(page: Page, sources: int, *, timeout: int = MEDIA_TIMEOUT) -> list:
    """Require the page to send exactly this many videos (a camera, a screen), and return them."""
    deadline = time.monotonic() + timeout / 1000
    while True:
        found = outgoing_video(page)
        if len(found) == sources:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"the page sends {len(found)} videos, not {sources}: {found}")
        time.sleep(0.5)


# The width of each simulcast layer the page's camera sends now, by rid. Chromium scales them
# all down on a busy machine, so a received picture is compared with what its sender sends.
LAYER_WIDTHS = """async () => {
    const widths = {};
    for (const pc of window.__peerConnections) {
        if (pc.connectionState === "closed") continue;
        for (const stats of (await pc.getStats()).values()) {
            if (stats.type === "outbound-rtp" && stats.kind === "video" && stats.rid) {
                widths[stats.rid] = stats.frameWidth ?? 0;
            }
        }
    }
    return widths;
}"""
PICTURE_WIDTH = """(selector) => document.querySelector(selector)?.videoWidth ?? 0"""


def expect_layer(viewer, sender, rid: str) -> None:
    """Require the viewer to show the sender's camera at the size of that simulcast layer."""
    video = f'{CAMERA_TILES}[data-name="{sender.name}"] video'
    deadline = time.monotonic() + MEDIA_TIMEOUT / 1000
    while True:
        layers = sender.page.evaluate(LAYER_WIDTHS)
        shown = viewer.page.evaluate(PICTURE_WIDTH, video)
        # Told apart only when the layers differ in size.
        if shown and shown == layers.get(rid) and len(set(layers.values())) == 3:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{viewer.name} shows {sender.name}'s camera {shown} pixels wide, "
                f"not as layer {rid}: {layers}"
            )
        time.sleep(0.5)


def assert_no_protocol_errors(people) -> None:
    """Require that no page was refused a message, nor lost a connection to the media server."""
    for someone in people:
        troubles = [
            event
            for event in someone.events
            if "signaling error" in event or "media server connection" in event
        ]
        assert not troubles, f"{someone.name}: {troubles}"


def expect_everyone_seen(people) -> None:
    """Require everyone to see everyone else's camera playing, each once."""
    for viewer in people:
        others = [someone for someone in people if someone is not viewer]
        expect(viewer.page.locator(CAMERA_TILES)).to_have_count(len(others), timeout=MEDIA_TIMEOUT)
        for other in others:
            expect_remote_video_playing(viewer.page, other.name)


def test_six_people_each_send_one_camera_and_see_five(site, person, camera_browser):
    names = ["olga", "ann", "ben", "cy", "dee", "eve"]
    call = seed_call(site, *names[1:], media="sfu")
    url = site.call_url(call["slug"])
    people = [join(person, camera_browser, name, call["sessions"][name], url) for name in names]

    expect_everyone_seen(people)
    for someone in people:
        # One camera, in three simulcast layers, and nothing else: no peer-to-peer connections.
        [camera] = expect_outgoing_video(someone.page, 1)
        assert camera == ["h", "l", "m"], f"{someone.name}'s camera layers: {camera}"
    # Tiles of about 400 pixels get the medium layer; pinned, about 1000 pixels wide on the stage,
    # the high one; in the strip beside it, under 320 pixels, the low one.
    viewer, sender, other = people[0], people[2], people[3]
    expect_layer(viewer, sender, "m")
    pin = viewer.page.locator(f'{CAMERA_TILES}[data-name="{sender.name}"] .tile-pin')
    pin.click()
    expect(viewer.page.locator(f'{CAMERA_TILES}[data-name="{sender.name}"]')).to_have_class(
        ON_STAGE
    )
    expect_layer(viewer, sender, "h")
    expect_layer(viewer, other, "l")
    pin.click()
    expect_layer(viewer, sender, "m")

    # A shared screen is a second video from the sharer, shown on a tile of its own.
    sharer, viewers = people[1], [people[0], *people[2:]]
    sharer.page.locator("#screen-button").click()
    expect(sharer.page.locator("#screen-button")).to_have_attribute("aria-pressed", "true")
    expect_outgoing_video(sharer.page, 2)
    screen = f'{SCREEN_TILES}[data-name="{sharer.name} (screen)"]'
    for viewer in viewers:
        expect(viewer.page.locator(SCREEN_TILES)).to_have_count(1, timeout=MEDIA_TIMEOUT)
        expect_video_playing(viewer.page, f"{screen} video")
        # The screen takes the stage; the sharer's camera stays in the strip, still playing.
        expect(viewer.page.locator(screen)).to_have_class(ON_STAGE, timeout=PAGE_TIMEOUT)
        expect(viewer.page.locator(CAMERA_TILES)).to_have_count(5)
        expect_remote_video_playing(viewer.page, sharer.name)
        expect_outgoing_video(viewer.page, 1)

    sharer.page.locator("#screen-button").click()
    expect(sharer.page.locator("#screen-button")).to_have_attribute("aria-pressed", "false")
    expect_outgoing_video(sharer.page, 1)
    for viewer in viewers:
        expect(viewer.page.locator(SCREEN_TILES)).to_have_count(0, timeout=MEDIA_TIMEOUT)
    expect_everyone_seen(people)
    assert_no_protocol_errors(people)


def test_an_automatic_call_moves_to_the_media_server_at_five_without_a_reload(
    site, person, camera_browser
):
    names = ["olga", "ann", "ben", "cy", "dee"]
    call = seed_call(site, *names[1:], media="auto")
    url = site.call_url(call["slug"])
    people = [join(person, camera_browser, name, call["sessions"][name], url) for name in names[:4]]

    # Four people: a mesh, each sending their camera to each of the three others.
    expect_everyone_seen(people)
    for someone in people:
        expect_outgoing_video(someone.page, 3)
        someone.page.evaluate("() => { window.__sameDocument = true; }")

    people.append(join(person, camera_browser, "dee", call["sessions"]["dee"], url))
    expect_everyone_seen(people)
    for someone in people:
        # The peer connections closed; one camera goes to the media server.
        expect_outgoing_video(someone.page, 1)
    for someone in people[:4]:
        assert someone.page.evaluate("() => window.__sameDocument === true"), someone.name
    assert_no_protocol_errors(people)


def test_chat_through_the_media_server_reaches_everyone_as_text(site, person, camera_browser):
    names = ["olga", "ann", "ben", "cy"]
    call = seed_call(site, *names[1:], media="sfu")
    url = site.call_url(call["slug"])
    people = [join(person, camera_browser, name, call["sessions"][name], url) for name in names[:3]]
    olga, ann, ben = people
    expect_everyone_seen(people)

    text = "<b>Hello</b> & <img src=x onerror=alert(1)> everyone"
    send_chat(ann.page, text)
    for someone in people:
        set_chat_open(someone.page, open=True)
        line = chat_message(someone.page, "everyone")
        expect(line).to_have_count(1, timeout=PAGE_TIMEOUT)
        expect(line.locator(".chat-text")).to_have_text(text)
        expect(line.locator(".chat-author")).to_have_text("Ann")
        expect(someone.page.locator("#chat-log b, #chat-log img")).to_have_count(0)

    send_chat(ben.page, "And hello from Ben")
    for someone in people:
        expect(chat_message(someone.page, "from Ben")).to_have_count(1, timeout=PAGE_TIMEOUT)

    # A newcomer gets the chat so far from those already there, each message once.
    cy = join(person, camera_browser, "cy", call["sessions"]["cy"], url)
    set_chat_open(cy.page, open=True)
    expect(chat_messages(cy.page)).to_have_count(2, timeout=PAGE_TIMEOUT)
    expect(chat_message(cy.page, "everyone").locator(".chat-text")).to_have_text(text)
    expect(chat_message(cy.page, "from Ben").locator(".chat-author")).to_have_text("Ben")
    send_chat(cy.page, "Hi, I am Cy")
    for someone in [olga, ann, ben, cy]:
        expect(chat_message(someone.page, "I am Cy")).to_have_count(1, timeout=PAGE_TIMEOUT)
        expect(chat_messages(someone.page)).to_have_count(3)
    assert_no_protocol_errors([olga, ann, ben, cy])


def test_a_file_shared_through_the_site_reaches_everyone_whole(
    site, person, camera_browser, tmp_path
):
    names = ["olga", "ann", "ben"]
    call = seed_call(site, *names[1:], media="sfu")
    url = site.call_url(call["slug"])
    people = [join(person, camera_browser, name, call["sessions"][name], url) for name in names]
    olga, ann, ben = people
    expect_everyone_seen(people)
    content = os.urandom(300 * 1024)
    path = tmp_path / "minutes.bin"
    path.write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    for someone in people:
        set_chat_open(someone.page, open=True)

    olga.page.set_input_files("#file-input", path)

    outgoing = transfers(olga.page, "out")
    expect(outgoing).to_have_count(1, timeout=PAGE_TIMEOUT)
    expect(outgoing.locator(".transfer-status")).to_have_text(re.compile("^Shared"))
    for someone in (ann, ben):
        incoming = transfers(someone.page, "in")
        expect(incoming).to_have_count(1, timeout=PAGE_TIMEOUT)
        expect(incoming.locator(".transfer-name")).to_have_text("minutes.bin from Olga")
        link = incoming.locator("a.transfer-download")
        expect(link).to_have_attribute("href", re.compile(r"^/rooms/.+/files/"))
        expect(link).to_have_attribute("data-sha256", digest)
        received = download(someone.page, link)
        assert hashlib.sha256(received).hexdigest() == digest
    expect(transfers(olga.page, "in")).to_have_count(0)  # one's own file is not offered back
    assert_no_protocol_errors(people)


def test_after_a_restart_of_the_site_everyone_publishes_again(site, person, camera_browser):
    names = ["olga", "ann", "ben"]
    call = seed_call(site, *names[1:], media="sfu")
    url = site.call_url(call["slug"])
    people = [join(person, camera_browser, name, call["sessions"][name], url) for name in names]
    expect_everyone_seen(people)
    for someone in people:
        expect_connection(someone.page, "connected")
        someone.page.evaluate("() => { window.__sameDocument = true; }")

    site.stop(site.port)
    for someone in people:
        expect_connection(someone.page, "reconnecting")
    site.start(site.port)

    for someone in people:
        expect_connection(someone.page, "connected", timeout=RECONNECT_TIMEOUT)
        assert someone.page.evaluate("() => window.__sameDocument === true"), someone.name
    # New connections to the media server, the old ones closed: one camera out, everyone seen.
    expect_everyone_seen(people)
    for someone in people:
        expect_outgoing_video(someone.page, 1)
    send_chat(people[1].page, "Back through the media server")
    for someone in people:
        set_chat_open(someone.page, open=True)
        expect(chat_message(someone.page, "Back through")).to_have_count(1, timeout=PAGE_TIMEOUT)
    assert_no_protocol_errors(people)


# What the page's connections have received of video so far, in bytes.
VIDEO_BYTES_RECEIVED = """async () => {
    let bytes = 0;
    for (const pc of window.__peerConnections) {
        if (pc.connectionState === "closed") continue;
        for (const stats of (await pc.getStats()).values()) {
            if (stats.type !== "inbound-rtp" || stats.kind !== "video") continue;
            bytes += stats.bytesReceived;
        }
    }
    return bytes;
}"""

# The page as the browser leaves it when its tab goes to the background or the window is
# minimised (headless Chromium never hides a page of its own accord).
SET_HIDDEN = """(hidden) => {
    Object.defineProperty(document, "visibilityState", {
        configurable: true, get: () => (hidden ? "hidden" : "visible"),
    });
    Object.defineProperty(document, "hidden", {configurable: true, get: () => hidden});
    document.dispatchEvent(new Event("visibilitychange"));
}"""


def video_received_over(page: Page, seconds: float) -> int:
    before = page.evaluate(VIDEO_BYTES_RECEIVED)
    time.sleep(seconds)
    return page.evaluate(VIDEO_BYTES_RECEIVED) - before


def test_a_hidden_page_receives_no_video_and_sound_goes_on(site, person, camera_browser):
    names = ["olga", "ann", "ben"]
    call = seed_call(site, *names[1:], media="sfu")
    url = site.call_url(call["slug"])
    people = [join(person, camera_browser, name, call["sessions"][name], url) for name in names]
    olga, ann, ben = people
    expect_everyone_seen(people)
    assert video_received_over(ann.page, 2) > 10_000
    # The fake microphones beep: the loudest of the others is outlined, from the levels of the
    # sound received through the media server.
    expect(ann.page.locator(f"{CAMERA_TILES}.speaking")).to_have_count(1, timeout=MEDIA_TIMEOUT)

    ann.page.evaluate(SET_HIDDEN, True)
    # Paused at the media server: after a moment nothing more comes, while Olga's still does.
    deadline = time.monotonic() + MEDIA_TIMEOUT / 1000
    while (received := video_received_over(ann.page, 2)) > 0:
        assert time.monotonic() < deadline, f"a hidden page still receives video: {received} B"
    assert video_received_over(olga.page, 2) > 10_000
    for other in (olga, ben):
        expect_remote_audio_live(ann.page, other.name)

    ann.page.evaluate(SET_HIDDEN, False)
    for other in (olga, ben):
        expect_remote_video_playing(ann.page, other.name)
    assert_no_protocol_errors(people)


def test_after_a_restart_of_the_media_server_everyone_publishes_again(
    site, person, camera_browser, janus_server
):
    names = ["olga", "ann", "ben"]
    call = seed_call(site, *names[1:], media="sfu")
    url = site.call_url(call["slug"])
    people = [join(person, camera_browser, name, call["sessions"][name], url) for name in names]
    expect_everyone_seen(people)
    made = {}
    for someone in people:
        someone.page.evaluate("() => { window.__sameDocument = true; }")
        made[someone.name] = someone.page.evaluate("() => window.__peerConnections.length")

    janus_server.stop()
    janus_server.start()

    # The site moves the call to the media server that is back, and says so ("media" again):
    # every page publishes anew, on new connections, and receives everyone again.
    expect_everyone_seen(people)
    for someone in people:
        expect_outgoing_video(someone.page, 1)
        assert someone.page.evaluate("() => window.__sameDocument === true"), someone.name
        # A camera and a subscription more than before; the old ones closed.
        pcs = someone.page.evaluate(
            "() => window.__peerConnections.map((pc) => pc.connectionState === 'closed')"
        )
        assert len(pcs) >= made[someone.name] + 2, f"{someone.name}: {pcs}"
        assert all(pcs[: made[someone.name]]), f"{someone.name}: {pcs}"
    assert_no_protocol_errors(people)
