"""
The screenshots in docs/screenshots, taken of the real pages, after checking what they show.

A normal run saves them under the test's temporary directory; `UPDATE_SCREENSHOTS=1` writes them
to docs/screenshots, for a commit that changes how the pages look.
"""

import os

import pytest
from playwright.sync_api import expect

from tests.browser.pages import (
    MEDIA_TIMEOUT,
    enter_call,
    expect_remote_video_playing,
    expect_video_playing,
    join_call,
    open_call,
    remote_tiles,
)
from tests.conftest import BASE_DIR

pytestmark = pytest.mark.browser

SCREENSHOTS = BASE_DIR / "docs" / "screenshots"

# The fake microphone beeps now and then; the meter moves with the beeps.
MIC_LEVEL_MOVES = "() => Number(document.querySelector('#mic-level')?.value) > 0"


def test_the_prejoin_screen_and_a_call_of_three(site, call, person, tmp_path):
    directory = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    directory.mkdir(parents=True, exist_ok=True)
    url = site.call_url(call["slug"])
    olga = person("Olga", call["sessions"]["olga"])
    ann = person("Ann", call["sessions"]["ann"])
    ben = person("Ben", call["sessions"]["ben"])

    open_call(olga.page, url)
    expect_video_playing(olga.page, "video#preview")
    olga.page.wait_for_function(MIC_LEVEL_MOVES, timeout=MEDIA_TIMEOUT)
    expect(olga.page.locator("#join-button")).to_be_enabled()
    expect(olga.page.locator("#prejoin-error")).to_be_hidden()
    olga.page.screenshot(path=directory / "prejoin.png")

    join_call(olga.page)
    enter_call(ann.page, url)
    enter_call(ben.page, url)
    expect(olga.page.locator("#tiles .tile")).to_have_count(3, timeout=MEDIA_TIMEOUT)
    expect(remote_tiles(olga.page)).to_have_count(2)
    expect_video_playing(olga.page, "#tiles .tile-self video")
    expect_remote_video_playing(olga.page, "Ann")
    expect_remote_video_playing(olga.page, "Ben")
    olga.page.screenshot(path=directory / "call.png")

    for name in ("prejoin.png", "call.png"):
        assert (directory / name).stat().st_size > 0
