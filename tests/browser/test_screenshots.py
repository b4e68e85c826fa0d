"""
The screenshots in docs/screenshots, taken of the real pages, after checking what they show.

A normal run saves them under the test's temporary directory; `UPDATE_SCREENSHOTS=1` writes them
to docs/screenshots, for a commit that changes how the pages look. The screenshots of calls are
taken by test_layout.py, on its way from two people to six.
"""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.pages import MEDIA_TIMEOUT, expect_video_playing, open_call
from tests.conftest import BASE_DIR

pytestmark = pytest.mark.browser

SCREENSHOTS = BASE_DIR / "docs" / "screenshots"

# The fake microphone beeps now and then; the meter moves with the beeps.
MIC_LEVEL_MOVES = "() => Number(document.querySelector('#mic-level')?.value) > 0"


def screenshots_directory(tmp_path: Path) -> Path:
    """Return where this run saves its screenshots."""
    directory = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_the_prejoin_screen(site, call, person, tmp_path):
    directory = screenshots_directory(tmp_path)
    url = site.call_url(call["slug"])
    olga = person("Olga", call["sessions"]["olga"])

    open_call(olga.page, url)
    expect_video_playing(olga.page, "video#preview")
    olga.page.wait_for_function(MIC_LEVEL_MOVES, timeout=MEDIA_TIMEOUT)
    expect(olga.page.locator("#join-button")).to_be_enabled()
    expect(olga.page.locator("#prejoin-error")).to_be_hidden()
    olga.page.screenshot(path=directory / "prejoin.png")
    assert (directory / "prejoin.png").stat().st_size > 0
