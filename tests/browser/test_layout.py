"""
The call's layout as people see it, on a laptop (1280 × 800) and on a phone (390 × 844).

One call grows from two people to three, four and six; at each size every page is looked at in
both viewports (the same pages, resized): every face is whole, as far as a tile can show it, and
every control is on the screen. Then one person shares a screen, which everyone sees whole.

The cameras are a small video file (320 × 240), so that six people's Chromium renderers encoding
and decoding five streams each stay light; its 4:3 shape is not the 16:9 a layout would assume.

The README's screenshots of calls are taken on the way (see test_screenshots.py for where).
"""

import contextlib

import pytest
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.browser.conftest import GRANT_MEDIA, launch_chromium
from tests.browser.pages import (
    MEDIA_TIMEOUT,
    PAGE_TIMEOUT,
    REMOTE_TILES,
    enter_call,
    expect_remote_video_playing,
    remote_tile,
)
from tests.browser.test_screenshots import screenshots_directory
from tests.live_site import seed_call

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

# At most this much of a camera's picture may be cut off by its tile.
MOST_CROPPED = 0.1

CAMERA_WIDTH, CAMERA_HEIGHT, CAMERA_FPS = 320, 240, 12

# Milliseconds a screenshot waits for every connection to report good figures, so that it shows
# a call at rest rather than one still settling; it is taken anyway after that.
SETTLE_TIMEOUT = 20_000
GOOD_QUALITY = """() => [...document.querySelectorAll("#tiles .tile-quality")]
    .every((quality) => quality.dataset.quality === "good")"""


def write_y4m(path, frames: int = 24) -> None:
    """
    Write a looping Y4M video of a person-like shape swaying in front of a backdrop.

    Chromium plays it as its fake camera (--use-file-for-fake-video-capture). The picture moves
    enough from frame to frame for a test to see that it is not frozen.
    """
    width, height = CAMERA_WIDTH, CAMERA_HEIGHT
    backdrop = bytearray()
    for row in range(height):
        backdrop += bytes([70 + row * 60 // height]) * width
    with path.open("wb") as video:
        video.write(f"YUV4MPEG2 W{width} H{height} F{CAMERA_FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in range(frames):
            # Swaying left and right, back where it started after the last frame.
            sway = round(36 * (1 - abs(2 * frame / frames - 1) * 2))
            centre = width // 2 + sway
            luma = bytearray(backdrop)
            blue = bytearray([150]) * (width * height // 4)
            red = bytearray([115]) * (width * height // 4)
            for row in range(height):
                # The head, a disc; the shoulders, the top of a wide ellipse.
                head = 48**2 - (row - 95) ** 2
                shoulders = 1 - ((row - height - 20) / 95) ** 2
                spans = []
                if head > 0:
                    spans.append((int(head**0.5), 185, 105, 150))
                if shoulders > 0:
                    spans.append((int(120 * shoulders**0.5), 95, 160, 100))
                for half, y, u, v in spans:
                    left, right = max(centre - half, 0), min(centre + half, width)
                    luma[row * width + left : row * width + right] = bytes([y]) * (right - left)
                    if row % 2 == 0:
                        start = (row // 2) * (width // 2)
                        chroma_left, chroma_right = start + left // 2, start + right // 2
                        blue[chroma_left:chroma_right] = bytes([u]) * (chroma_right - chroma_left)
                        red[chroma_left:chroma_right] = bytes([v]) * (chroma_right - chroma_left)
            video.write(b"FRAME\n" + luma + blue + red)


@pytest.fixture(scope="module")
def small_camera_browser(playwright, playwright_disabled_features, tmp_path_factory):
    """Chromium whose fake camera shows the small 4:3 video, granted without asking."""
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


# How much of each remote video's picture the person sees: the picture as object-fit scales it
# in the element's box, cut by that box, by the tiles' area and by the viewport.
VISIBLE_FRACTIONS = """(selector) => {
    const area = document.querySelector("#tiles").getBoundingClientRect();
    return [...document.querySelectorAll(selector)].map((tile) => {
        const video = tile.querySelector("video");
        const name = tile.dataset.name;
        const {videoWidth: width, videoHeight: height} = video;
        if (!width || !height) return {name, fraction: null};
        const box = video.getBoundingClientRect();
        const fit = getComputedStyle(video).objectFit;
        const contain = Math.min(box.width / width, box.height / height);
        const scale = {
            cover: Math.max(box.width / width, box.height / height),
            contain,
            fill: null,
            none: 1,
            "scale-down": Math.min(1, contain),
        }[fit];
        // "fill" stretches the whole picture into the box: all of it shows, out of shape.
        const shown = scale === null
            ? {left: box.left, top: box.top, right: box.right, bottom: box.bottom}
            : {
                left: box.left + (box.width - width * scale) / 2,
                top: box.top + (box.height - height * scale) / 2,
                right: box.left + (box.width + width * scale) / 2,
                bottom: box.top + (box.height + height * scale) / 2,
            };
        const clip = {
            left: Math.max(box.left, area.left, 0),
            top: Math.max(box.top, area.top, 0),
            right: Math.min(box.right, area.right, window.innerWidth),
            bottom: Math.min(box.bottom, area.bottom, window.innerHeight),
        };
        const visibleWidth = Math.max(
            0, Math.min(shown.right, clip.right) - Math.max(shown.left, clip.left));
        const visibleHeight = Math.max(
            0, Math.min(shown.bottom, clip.bottom) - Math.max(shown.top, clip.top));
        const fraction = (visibleWidth * visibleHeight)
            / ((shown.right - shown.left) * (shown.bottom - shown.top));
        return {
            name, fraction, fit, video: [width, height],
            box: [box.width, box.height].map(Math.round), area: box.width * box.height,
        };
    });
}"""

ALL_AT_LEAST = (
    """([selector, count, least]) => {
    const fractions = ("""
    + VISIBLE_FRACTIONS
    + """)(selector);
    return fractions.length === count
        && fractions.every((tile) => tile.fraction !== null && tile.fraction >= least);
}"""
)

# Every control a person can reach in the call (what a closed menu holds is not on screen yet),
# with its box, and how far the page scrolls: it should not.
CONTROLS = """() => {
    const controls = [...document.querySelectorAll(
        "#call button, #call select, #call input, #call textarea, #call a[href]"
    )].filter((control) => control.checkVisibility());
    return {
        viewport: [window.innerWidth, window.innerHeight],
        scroll: [document.documentElement.scrollWidth, document.documentElement.scrollHeight],
        controls: controls.map((control) => {
            const box = control.getBoundingClientRect();
            return {
                name: control.id || control.textContent.trim() || control.className,
                box: [box.left, box.top, box.right, box.bottom].map(Math.round),
            };
        }),
    };
}"""


def expect_whole_pictures(page: Page, count: int, least: float, where: str) -> list[dict]:
    """Require `count` remote tiles each showing at least `least` of its picture; return them."""
    try:
        page.wait_for_function(
            ALL_AT_LEAST, arg=[REMOTE_TILES, count, least], timeout=MEDIA_TIMEOUT
        )
    except PlaywrightTimeoutError:
        fractions = page.evaluate(VISIBLE_FRACTIONS, REMOTE_TILES)
        raise AssertionError(
            f"{where}: not every one of {count} pictures shows {least:.0%}: {fractions}"
        ) from None
    return page.evaluate(VISIBLE_FRACTIONS, REMOTE_TILES)


# The area of each tile, by name ("self" for one's own).
TILE_AREAS = """() => Object.fromEntries(
    [...document.querySelectorAll("#tiles .tile")].map((tile) => {
        const box = tile.getBoundingClientRect();
        return [tile.matches(".tile-self") ? "self" : tile.dataset.name, box.width * box.height];
    })
)"""

STAGED = (
    """(name) => {
    const areas = ("""
    + TILE_AREAS
    + """)();
    return Object.entries(areas)
        .every(([other, area]) => other === name || areas[name] > 1.25 * area);
}"""
)


def expect_pin_takes_the_stage(page: Page, name: str) -> None:
    """
    Pin a person: their tile takes the stage, larger than the others; unpin: back to the grid.

    On a phone the stage is as wide as the screen and the strip below it gets the rest of the
    height, so the stage is not much larger there than a tile of the strip.
    """
    pin = remote_tile(page, name).locator(".tile-pin")
    expect(pin).to_have_accessible_name(f"Pin {name}")
    pin.click()
    expect(pin).to_have_attribute("aria-pressed", "true")
    try:
        page.wait_for_function(STAGED, arg=name, timeout=PAGE_TIMEOUT)
    except PlaywrightTimeoutError:
        raise AssertionError(f"{name} is not on the stage: {page.evaluate(TILE_AREAS)}") from None
    pin.click()
    expect(pin).to_have_attribute("aria-pressed", "false")
    page.wait_for_function(f"() => !({STAGED})({name!r})", timeout=PAGE_TIMEOUT)


def expect_controls_on_screen(page: Page, where: str) -> None:
    """Require every visible control of the call inside the viewport, with nothing to scroll."""
    found = page.evaluate(CONTROLS)
    width, height = found["viewport"]
    outside = [
        control
        for control in found["controls"]
        if control["box"][0] < 0
        or control["box"][1] < 0
        or control["box"][2] > width
        or control["box"][3] > height
    ]
    assert not outside, f"{where}: controls outside the {width}×{height} viewport: {outside}"
    assert found["scroll"] == [width, height], f"{where}: the page scrolls: {found['scroll']}"


def expect_every_control_reachable(page: Page, where: str) -> None:
    """The main controls show in the row; the others are in the More menu, on screen when open."""
    for control in ("#mute-button", "#camera-button", "#people-toggle", "#chat-toggle"):
        expect(page.locator(control)).to_be_visible()
    expect(page.locator("#leave-button")).to_be_visible()
    expect_controls_on_screen(page, where)
    more = page.locator("#more-button")
    if more.is_visible():
        more.click()
        for control in ("#screen-button", "#hand-button", "#shortcuts-button"):
            expect(page.locator(f"#more-menu {control}")).to_be_visible()
        expect_controls_on_screen(page, f"{where}, with the More menu open")
        page.keyboard.press("Escape")
        expect(page.locator("#more-menu")).to_be_hidden()
    else:
        for control in ("#screen-button", "#hand-button", "#shortcuts-button"):
            expect(page.locator(control)).to_be_visible()


def test_every_face_is_whole_and_every_control_on_screen_from_two_to_six_people(
    site, person, small_camera_browser, tmp_path
):
    screenshots = screenshots_directory(tmp_path)
    names = ["olga", "ann", "ben", "cy", "dee", "eve"]
    call = seed_call(site, *names[1:])
    url = site.call_url(call["slug"])
    people = []
    measured = []

    def join(name: str) -> None:
        someone = person(name.title(), call["sessions"][name], in_browser=small_camera_browser)
        enter_call(someone.page, url)
        people.append(someone)

    def screenshot(page: Page, name: str) -> None:
        # On a busy machine the figures may stay poor: the picture is then what it is.
        with contextlib.suppress(PlaywrightTimeoutError):
            page.wait_for_function(GOOD_QUALITY, timeout=SETTLE_TIMEOUT)
        # The focus ring a test's key press left is no part of the picture.
        page.evaluate("() => document.activeElement?.blur()")
        page.screenshot(path=screenshots / name)

    for count in (2, 3, 4, 6):
        while len(people) < count:
            join(names[len(people)])
        for viewport_name, viewport in (("laptop", LAPTOP), ("phone", PHONE)):
            for someone in people:
                someone.page.set_viewport_size(viewport)
            for someone in people:
                where = f"{count} people, {someone.name}'s {viewport_name}"
                tiles = expect_whole_pictures(someone.page, count - 1, 1 - MOST_CROPPED, where)
                measured.append((where, [round(tile["fraction"], 3) for tile in tiles]))
                expect_every_control_reachable(someone.page, where)
            if count == 3:
                expect_pin_takes_the_stage(people[0].page, "Ben")
            if viewport_name == "laptop" and count in (2, 6):
                screenshot(people[0].page, f"call-{count}.png")
            if viewport_name == "phone" and count == 4:
                screenshot(people[0].page, "call-phone.png")

    # A shared screen takes the stage, whole, on both screens; the cameras stay whole beside it.
    sharer, viewers = people[1], [people[0], *people[2:]]
    for someone in people:
        someone.page.set_viewport_size(LAPTOP)
    sharer.page.locator("#screen-button").click()
    expect(sharer.page.locator("#screen-button")).to_have_attribute("aria-pressed", "true")
    for viewport_name, viewport in (("laptop", LAPTOP), ("phone", PHONE)):
        for someone in people:
            someone.page.set_viewport_size(viewport)
        for viewer in viewers:
            where = f"{sharer.name}'s screen, {viewer.name}'s {viewport_name}"
            tile = remote_tile(viewer.page, sharer.name)
            expect(tile.locator(".tile-icons")).to_contain_text(
                "sharing screen", timeout=PAGE_TIMEOUT
            )
            tiles = expect_whole_pictures(viewer.page, len(people) - 1, 1 - MOST_CROPPED, where)
            shared = next(tile for tile in tiles if tile["name"] == sharer.name)
            assert shared["fraction"] == pytest.approx(1, abs=1e-3), f"{where}: {shared}"
            largest = max(tiles, key=lambda tile: tile["area"])
            assert largest["name"] == sharer.name, f"{where}: the screen is not largest: {tiles}"
            measured.append((where, [round(tile["fraction"], 3) for tile in tiles]))
        if viewport_name == "laptop":
            expect_remote_video_playing(people[0].page, sharer.name)
            screenshot(people[0].page, "call-screen-share.png")

    # Shown with pytest -s.
    print("\nvisible fractions of the remote pictures:")
    for where, fractions in measured:
        print(f"  {where}: {fractions}")
