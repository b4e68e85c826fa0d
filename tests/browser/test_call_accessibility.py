"""
The call page for people who use a keyboard or a screen reader.

What a screen reader would say is what the page puts in its one polite live region
(#announcements); keyboard shortcuts are pressed as a person presses them; axe-core checks the
page in each of its states.
"""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.axe import violations
from tests.browser.pages import (
    PAGE_TIMEOUT,
    enter_call,
    expect_remote_video_playing,
    join_call,
    open_call,
    send_chat,
    set_chat_open,
    set_panel_open,
)

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


def test_the_live_region_announces_joins_leaves_and_chat_while_the_chat_is_closed(
    site, call, person
):
    url = site.call_url(call["slug"])
    olga = person("Olga", call["sessions"]["olga"])
    ann = person("Ann", call["sessions"]["ann"])
    enter_call(olga.page, url)
    announcements = olga.page.locator("#announcements")
    expect(announcements).to_have_attribute("aria-live", "polite")
    # The tiles change all the time (quality figures): they must not be read out themselves.
    expect(olga.page.locator("#tiles")).not_to_have_attribute("aria-live", re.compile(".*"))

    enter_call(ann.page, url)
    expect(announcements).to_contain_text("Ann joined.", timeout=PAGE_TIMEOUT)

    # Chat goes over the peer connection: wait until it carries the picture.
    expect_remote_video_playing(ann.page, "Olga")
    set_chat_open(olga.page, open=False)
    send_chat(ann.page, "The slides are up")
    expect(announcements).to_contain_text("Ann says: The slides are up", timeout=PAGE_TIMEOUT)

    ann.page.locator("#hand-button").click()
    expect(announcements).to_contain_text("Ann raised a hand.", timeout=PAGE_TIMEOUT)

    ann.page.locator("#leave-button").click()
    expect(announcements).to_contain_text("Ann left.", timeout=PAGE_TIMEOUT)
    # Said once, though the page also shows the raised hand as a notice.
    assert announcements.inner_text().count("Ann raised a hand") == 1


def aria_pressed(page: Page, selector: str) -> str | None:
    return page.locator(selector).get_attribute("aria-pressed")


def test_single_key_shortcuts_can_be_turned_off_and_ctrl_alt_ones_work_while_typing(
    site, call, person
):
    url = site.call_url(call["slug"])
    olga = person("Olga", call["sessions"]["olga"])
    page = olga.page
    enter_call(page, url)
    mute = "#mute-button"
    expect(page.locator(mute)).to_have_attribute("aria-pressed", "false")

    page.keyboard.press("m")
    expect(page.locator(mute)).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("m")
    expect(page.locator(mute)).to_have_attribute("aria-pressed", "false")

    # A panel opened by its key takes the focus, and gives it to its toggle when it closes.
    page.keyboard.press("p")
    expect(page.locator("#people-panel")).to_be_visible()
    expect(page.locator("#people-title")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#people-panel")).to_be_hidden()
    expect(page.locator("#people-toggle")).to_be_focused()

    page.keyboard.press("?")
    dialog = page.locator("#shortcuts-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Mute or unmute")
    page.locator("#single-key-shortcuts").uncheck()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # A key press is handled before Playwright's press returns: nothing changed, nothing will.
    page.keyboard.press("m")
    assert aria_pressed(page, mute) == "false"
    page.keyboard.press("Control+Alt+KeyM")
    expect(page.locator(mute)).to_have_attribute("aria-pressed", "true")

    # Typing in the chat types; Ctrl + Alt still reaches the call.
    page.keyboard.press("Control+Alt+KeyC")
    expect(page.locator("#chat-panel")).to_be_visible()
    chat_input = page.locator("#chat-input")
    expect(chat_input).to_be_focused()
    page.keyboard.type("mmm")
    expect(chat_input).to_have_value("mmm")
    assert aria_pressed(page, mute) == "true"
    page.keyboard.press("Control+Alt+KeyM")
    expect(page.locator(mute)).to_have_attribute("aria-pressed", "false")
    expect(chat_input).to_have_value("mmm")
    page.keyboard.press("Escape")
    expect(page.locator("#chat-panel")).to_be_hidden()
    expect(page.locator("#chat-toggle")).to_be_focused()

    # Leaving the page asks first; the choice is remembered for the next call.
    asked = []

    def answer(dialog) -> None:
        asked.append(dialog.type)
        dialog.accept()

    page.once("dialog", answer)
    page.reload()
    assert asked == ["beforeunload"]
    open_call(page, url)
    join_call(page)
    page.keyboard.press("m")
    assert aria_pressed(page, mute) == "false"
    page.locator("#shortcuts-button").click()
    expect(page.locator("#single-key-shortcuts")).not_to_be_checked()


def expect_no_violations(page: Page, state: str) -> None:
    found = violations(page)
    assert not found, f"{state}: axe-core found serious or critical violations: {found}"


def test_the_call_page_passes_axe_before_and_during_a_call(site, call, person):
    url = site.call_url(call["slug"])
    olga = person("Olga", call["sessions"]["olga"])
    ann = person("Ann", call["sessions"]["ann"])
    page = olga.page

    open_call(page, url)
    expect(page.locator("#join-button")).to_be_enabled(timeout=PAGE_TIMEOUT)
    expect_no_violations(page, "pre-join")

    join_call(page)
    enter_call(ann.page, url)
    expect_remote_video_playing(page, "Ann")
    expect_remote_video_playing(ann.page, "Olga")
    send_chat(ann.page, "Hello, Olga")
    expect_no_violations(page, "in the call")

    set_panel_open(page, "#people-panel", "#people-toggle", open=True)
    expect_no_violations(page, "with the people panel open")
    send_chat(page, "Hello, Ann")
    expect(page.locator("#chat-log .chat-message")).to_have_count(2, timeout=PAGE_TIMEOUT)
    expect_no_violations(page, "with the chat panel open")
    set_chat_open(page, open=False)

    page.locator("#shortcuts-button").click()
    expect(page.locator("#shortcuts-dialog")).to_be_visible()
    expect_no_violations(page, "with the shortcuts dialog open")
    page.keyboard.press("Escape")

    page.set_viewport_size(PHONE)
    page.locator("#more-button").click()
    expect(page.locator("#more-menu")).to_be_visible()
    expect_no_violations(page, "on a phone, with the More menu open")
    page.keyboard.press("Escape")
    set_chat_open(page, open=True)
    expect_no_violations(page, "on a phone, with the chat open")
