"""
What a person does and sees on the call page, in Playwright's terms.

The steps here use only the page's DOM contract (ids, classes and attributes, and the media
elements), never its scripts: a test asserts what a person would see.
"""

import json
import time
from dataclasses import dataclass, field

from playwright.sync_api import BrowserContext, Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

VIEWPORT = {"width": 1280, "height": 800}

# Milliseconds. Generous, because up to four Chromium renderers share the machine with daphne;
# a page that works is far quicker, and one that does not still fails.
PAGE_TIMEOUT = 15_000
MEDIA_TIMEOUT = 30_000
# How soon the others must see that someone left.
LEAVE_TIMEOUT = 10_000
# How soon a page must be back on its own once the server is: its back-off tops out at 15 s.
RECONNECT_TIMEOUT = 30_000

REMOTE_TILES = "#tiles .tile:not(.tile-self)"


@dataclass
class Person:
    name: str
    context: BrowserContext
    page: Page
    events: list[str] = field(default_factory=list, repr=False)

    def record_page_events(self) -> None:
        """Keep what the page logs, its uncaught errors and its websockets, for failure reports."""
        page, events = self.page, self.events
        page.on("console", lambda message: events.append(f"console.{message.type}: {message.text}"))
        page.on("pageerror", lambda error: events.append(f"uncaught: {error}"))

        def websocket_opened(websocket):
            events.append(f"websocket opened: {websocket.url}")
            websocket.on("close", lambda _: events.append(f"websocket closed: {websocket.url}"))

        page.on("websocket", websocket_opened)


# Joining


def open_call(page: Page, url: str) -> None:
    """Open the call page and wait for the pre-join screen."""
    page.goto(url)
    expect(page.locator("#prejoin")).to_be_visible(timeout=PAGE_TIMEOUT)


def join_call(page: Page, button: str = "#join-button") -> None:
    """Press a join button on the pre-join screen and wait to be in the call."""
    page.locator(button).click(timeout=PAGE_TIMEOUT)
    expect(page.locator("#call")).to_be_visible(timeout=PAGE_TIMEOUT)
    expect(page.locator("#prejoin")).to_be_hidden()


def enter_call(page: Page, url: str) -> None:
    open_call(page, url)
    join_call(page)


# Tiles and media


def remote_tile_selector(name: str) -> str:
    # A JSON string is a valid CSS string for the plain names the tests use.
    return f"{REMOTE_TILES}[data-name={json.dumps(name)}]"


def remote_tile(page: Page, name: str) -> Locator:
    return page.locator(remote_tile_selector(name))


def remote_tiles(page: Page) -> Locator:
    return page.locator(REMOTE_TILES)


VIDEO_STATE = """(selector) => {
    const video = document.querySelector(selector);
    if (!video) return null;
    const stream = video.srcObject;
    return {
        videoWidth: video.videoWidth,
        videoHeight: video.videoHeight,
        readyState: video.readyState,
        paused: video.paused,
        currentTime: video.currentTime,
        frames: video.getVideoPlaybackQuality().totalVideoFrames,
        tracks: stream instanceof MediaStream
            ? stream.getTracks().map((track) =>
                `${track.kind} ${track.readyState} enabled=${track.enabled} muted=${track.muted}`)
            : String(stream),
    };
}"""

# Playing: a picture, and not paused (a paused element also plays none of the stream's sound).
PLAYING = """(selector) => {
    const video = document.querySelector(selector);
    return video !== null && video.videoWidth > 0 && !video.paused;
}"""

FRAMES = """(selector) => {
    const video = document.querySelector(selector);
    return video === null ? null : video.getVideoPlaybackQuality().totalVideoFrames;
}"""

# "advanced" once the video has shown `more` frames since `start`; "restarted" when the count went
# down (the page replaced the element), so the caller starts counting again.
FRAMES_SINCE = """([selector, start, more]) => {
    const video = document.querySelector(selector);
    if (video === null) return false;
    const frames = video.getVideoPlaybackQuality().totalVideoFrames;
    if (frames < start) return "restarted";
    return frames >= start + more ? "advanced" : false;
}"""


def video_state(page: Page, video_selector: str) -> dict | None:
    """Describe a video element for an assertion message."""
    return page.evaluate(VIDEO_STATE, video_selector)


# The brightness of a 32 x 18 grid over the picture, as the person sees it.
LUMA = """(video) => {
    const canvas = document.createElement("canvas");
    canvas.width = 32;
    canvas.height = 18;
    const context = canvas.getContext("2d", {willReadFrequently: true});
    context.drawImage(video, 0, 0, canvas.width, canvas.height);
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
    const luma = [];
    for (let i = 0; i < pixels.length; i += 4) {
        luma.push(Math.round((pixels[i] + pixels[i + 1] + pixels[i + 2]) / 3));
    }
    return luma;
}"""

# Frames can advance and still show nothing: a disabled track sends black frames.
PICTURE_CHANGED = (
    """([selector, before]) => {
    const video = document.querySelector(selector);
    if (video === null || video.videoWidth === 0) return false;
    const luma = ("""
    + LUMA
    + """)(video);
    return luma.some((value, index) => Math.abs(value - before[index]) > 4);
}"""
)


def expect_picture_changes(page: Page, video_selector: str, *, timeout: int = MEDIA_TIMEOUT):
    """Require the picture itself to change: not frozen, not black."""
    before = page.locator(video_selector).evaluate(LUMA)
    try:
        page.wait_for_function(PICTURE_CHANGED, arg=[video_selector, before], timeout=timeout)
    except PlaywrightTimeoutError:
        state = video_state(page, video_selector)
        raise AssertionError(
            f"the picture in {video_selector} stayed the same for {timeout} ms "
            f"(brightness {min(before)} to {max(before)}): {state}"
        ) from None


def expect_frames_advance(
    page: Page, video_selector: str, *, frames: int = 5, timeout: int = MEDIA_TIMEOUT
) -> None:
    """Require the video to present `frames` new frames within the timeout: it is not frozen."""
    deadline = time.monotonic() + timeout / 1000
    while True:
        start = page.evaluate(FRAMES, video_selector) or 0
        remaining = int((deadline - time.monotonic()) * 1000)
        try:
            outcome = page.wait_for_function(
                FRAMES_SINCE, arg=[video_selector, start, frames], timeout=max(remaining, 1)
            ).json_value()
        except PlaywrightTimeoutError:
            state = video_state(page, video_selector)
            raise AssertionError(
                f"the video {video_selector} showed fewer than {frames} new frames after frame "
                f"{start} in {timeout} ms: {state}"
            ) from None
        if outcome == "advanced":
            return


def expect_video_playing(page: Page, video_selector: str, *, timeout: int = MEDIA_TIMEOUT) -> None:
    """
    Require a video to play a moving picture.

    It is visible, has a picture (videoWidth above zero), is not paused, presents new frames, and
    what they show changes.
    """
    expect(page.locator(video_selector)).to_be_visible(timeout=timeout)
    try:
        page.wait_for_function(PLAYING, arg=video_selector, timeout=timeout)
    except PlaywrightTimeoutError:
        state = video_state(page, video_selector)
        raise AssertionError(f"{video_selector} is not playing a picture: {state}") from None
    expect_frames_advance(page, video_selector, timeout=timeout)
    expect_picture_changes(page, video_selector, timeout=timeout)


def expect_remote_video_playing(page: Page, name: str, *, timeout: int = MEDIA_TIMEOUT) -> None:
    """Require the tile of the person called `name` to show their moving picture."""
    expect_video_playing(page, f"{remote_tile_selector(name)} video", timeout=timeout)


AUDIO_LIVE = """(selector) => {
    const video = document.querySelector(selector);
    if (video === null || !(video.srcObject instanceof MediaStream)) return false;
    const [audio] = video.srcObject.getAudioTracks();
    return audio !== undefined && audio.readyState === "live" && audio.enabled;
}"""


def expect_remote_audio_live(page: Page, name: str, *, timeout: int = MEDIA_TIMEOUT) -> None:
    """
    Require the remote tile's stream to carry a live, enabled audio track.

    `track.muted` is not required to be false: with the fake microphone it flips whenever the
    beep pauses and no packets come.
    """
    video_selector = f"{remote_tile_selector(name)} video"
    try:
        page.wait_for_function(AUDIO_LIVE, arg=video_selector, timeout=timeout)
    except PlaywrightTimeoutError:
        state = video_state(page, video_selector)
        raise AssertionError(f"no live audio track in {video_selector}: {state}") from None


def expect_no_picture(page: Page, tile_selector: str) -> None:
    """Require a tile to show no video: no <video>, or one without a picture."""
    state = page.evaluate(VIDEO_STATE, f"{tile_selector} video")
    assert state is None or state["videoWidth"] == 0, state


# Panels


def set_panel_open(page: Page, panel: str, toggle: str, *, open: bool) -> None:
    """Open or close a panel with its toggle button, whichever way it starts."""
    if page.locator(panel).is_visible() != open:
        page.locator(toggle).click()
    if open:
        expect(page.locator(panel)).to_be_visible()
    else:
        expect(page.locator(panel)).to_be_hidden()


def reveal(page: Page, target: Locator, toggle: str, *, timeout: int = PAGE_TIMEOUT) -> None:
    """
    Wait for something to appear on the page, opening its panel with `toggle` if it is closed.

    A person notices the badge or the notice and opens the panel; the contract leaves open whether
    the page opens it by itself.
    """
    expect(target).to_be_attached(timeout=timeout)
    if not target.is_visible():
        page.locator(toggle).click()
    expect(target).to_be_visible()


def set_chat_open(page: Page, *, open: bool) -> None:
    set_panel_open(page, "#chat-panel", "#chat-toggle", open=open)


# Chat


def send_chat(page: Page, text: str) -> None:
    set_chat_open(page, open=True)
    page.locator("#chat-input").fill(text)
    # As the send button or the Enter key would: the form's own submission.
    page.locator("#chat-form").evaluate("form => form.requestSubmit()")


def chat_messages(page: Page) -> Locator:
    return page.locator("#chat-log .chat-message")


def chat_message(page: Page, text: str) -> Locator:
    """The chat lines whose text contains `text`."""
    return chat_messages(page).filter(has=page.locator(".chat-text", has_text=text))


# Files


def transfers(page: Page, direction: str) -> Locator:
    """The file transfers going "out" from this person or coming "in" to them."""
    return page.locator(f'#transfers .transfer[data-direction="{direction}"]')


PROGRESS_AT = """([transfer, size]) => {
    const progress = transfer.querySelector("progress");
    return progress !== null && progress.value === size && progress.max === size;
}"""


def expect_progress_complete(transfer: Locator, size: int, *, timeout: int = MEDIA_TIMEOUT) -> None:
    """Require the transfer's progress bar to reach its maximum, which is the file's size."""
    element = transfer.element_handle(timeout=timeout)
    try:
        transfer.page.wait_for_function(PROGRESS_AT, arg=[element, size], timeout=timeout)
    except PlaywrightTimeoutError:
        progress = element.evaluate(
            "t => { const p = t.querySelector('progress'); return p && [p.value, p.max]; }"
        )
        raise AssertionError(
            f"the progress bar stopped at {progress}, not at {size} of {size}"
        ) from None


def download(page: Page, link: Locator) -> bytes:
    """Save what a download link points to (a blob: URL), as a person clicking it would."""
    with page.expect_download() as saved:
        link.click()
    return saved.value.path().read_bytes()


# The lobby, the people list and the end of a call


def lobby_entry(page: Page, name: str) -> Locator:
    return page.locator("#lobby-list .lobby-entry").filter(has_text=name)


def people_entry(page: Page, name: str) -> Locator:
    return page.locator("#people-list .person").filter(has_text=name)


def expect_connection(page: Page, state: str, *, timeout: int = PAGE_TIMEOUT) -> None:
    """Require the signaling connection notice to say "connected" (hidden) or "reconnecting"."""
    notice = page.locator("#connection-notice")
    expect(notice).to_have_attribute("data-state", state, timeout=timeout)
    if state == "reconnecting":
        expect(notice).to_be_visible()
        expect(notice).to_contain_text("Reconnecting")
    else:
        expect(notice).to_be_hidden()
