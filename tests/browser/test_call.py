"""
Calls between real Chromium windows, each a person signed in to the site: what they see and hear.

Every test starts the site afresh in a daphne process of its own (SQLite, the in-memory channel
layer) and opens one browser context per person. Media, chat and files go directly between the
contexts, as between people's computers; the server only does the signaling.
"""

import hashlib
import os
import re

import pytest
from playwright.sync_api import expect

from tests.browser.pages import (
    LEAVE_TIMEOUT,
    MEDIA_TIMEOUT,
    PAGE_TIMEOUT,
    RECONNECT_TIMEOUT,
    chat_message,
    download,
    enter_call,
    expect_connection,
    expect_no_picture,
    expect_progress_complete,
    expect_remote_audio_live,
    expect_remote_video_playing,
    join_call,
    lobby_entry,
    open_call,
    people_entry,
    remote_tile,
    remote_tile_selector,
    remote_tiles,
    reveal,
    send_chat,
    set_chat_open,
    transfers,
)

pytestmark = pytest.mark.browser

GET_USER_MEDIA = """async () => {
    try {
        await navigator.mediaDevices.getUserMedia({video: true, audio: true});
        return "granted";
    } catch (error) {
        return error.name;
    }
}"""


def expect_full_mesh(people) -> None:
    """Require everyone to see everyone else's moving picture, and nobody twice."""
    for viewer in people:
        others = [someone for someone in people if someone is not viewer]
        expect(remote_tiles(viewer.page)).to_have_count(len(others), timeout=MEDIA_TIMEOUT)
        for other in others:
            expect_remote_video_playing(viewer.page, other.name)


def test_two_people_see_and_hear_each_other(site, call, person):
    url = site.call_url(call["slug"])
    olga = person("Olga", call["sessions"]["olga"])
    ann = person("Ann", call["sessions"]["ann"])

    enter_call(olga.page, url)
    open_call(ann.page, url)
    already_in = ann.page.locator("#prejoin-people li").filter(has_text="Olga")
    expect(already_in).to_have_count(1, timeout=PAGE_TIMEOUT)
    join_call(ann.page)

    for viewer, other in ((olga, ann), (ann, olga)):
        expect(viewer.page.locator("#tiles .tile-self")).to_have_count(1)
        expect(remote_tiles(viewer.page)).to_have_count(1, timeout=MEDIA_TIMEOUT)
        tile = remote_tile(viewer.page, other.name)
        expect(tile).to_have_attribute("data-peer-id", re.compile(r"^[A-Za-z0-9_-]{1,64}$"))
        expect(tile.locator(".tile-name")).to_contain_text(other.name)
        expect_remote_video_playing(viewer.page, other.name)
        expect_remote_audio_live(viewer.page, other.name)


def test_three_people_hold_a_full_mesh_until_one_leaves(site, call, person):
    url = site.call_url(call["slug"])
    olga = person("Olga", call["sessions"]["olga"])
    ann = person("Ann", call["sessions"]["ann"])
    ben = person("Ben", call["sessions"]["ben"])
    for someone in (olga, ann, ben):
        enter_call(someone.page, url)

    expect_full_mesh([olga, ann, ben])

    ben.page.locator("#leave-button").click()

    for viewer in (olga, ann):
        expect(remote_tile(viewer.page, "Ben")).to_have_count(0, timeout=LEAVE_TIMEOUT)
    expect_full_mesh([olga, ann])


def test_chat_reaches_everyone_as_plain_text_and_counts_unread_lines(site, call, person):
    url = site.call_url(call["slug"])
    olga = person("Olga", call["sessions"]["olga"])
    ann = person("Ann", call["sessions"]["ann"])
    ben = person("Ben", call["sessions"]["ben"])
    for someone in (olga, ann, ben):
        enter_call(someone.page, url)
    # Chat goes over the peer connections: wait until they carry the pictures.
    expect_full_mesh([olga, ann, ben])
    set_chat_open(ann.page, open=True)
    set_chat_open(ben.page, open=False)

    send_chat(olga.page, "Good morning, everyone")
    send_chat(olga.page, "<b>bold</b>")

    greeting = chat_message(ann.page, "Good morning, everyone")
    expect(greeting).to_have_count(1, timeout=PAGE_TIMEOUT)
    expect(greeting).to_be_visible()
    expect(greeting.locator(".chat-author")).to_contain_text("Olga")
    expect(greeting.locator(".chat-time")).not_to_be_empty()
    markup = chat_message(ann.page, "<b>bold</b>")
    expect(markup).to_have_count(1, timeout=PAGE_TIMEOUT)
    assert markup.locator(".chat-text").evaluate("text => text.textContent") == "<b>bold</b>"
    expect(ann.page.locator("#chat-log b")).to_have_count(0)

    unread = ben.page.locator("#chat-unread")
    expect(unread).to_be_visible(timeout=PAGE_TIMEOUT)
    expect(unread).to_have_text("2")
    set_chat_open(ben.page, open=True)
    expect(chat_message(ben.page, "Good morning, everyone")).to_be_visible()
    expect(chat_message(ben.page, "<b>bold</b>")).to_be_visible()
    expect(ben.page.locator("#chat-log b")).to_have_count(0)
    expect(unread).to_be_hidden()

    send_chat(ben.page, "Morning, Olga")
    reply = chat_message(olga.page, "Morning, Olga")
    expect(reply).to_be_visible(timeout=PAGE_TIMEOUT)
    expect(reply.locator(".chat-author")).to_contain_text("Ben")


def test_a_file_sent_to_everyone_arrives_whole_and_verified(site, call, person, tmp_path):
    size = 1024 * 1024
    content = os.urandom(size)
    path = tmp_path / "measurements.bin"
    path.write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    url = site.call_url(call["slug"])
    olga = person("Olga", call["sessions"]["olga"])
    ann = person("Ann", call["sessions"]["ann"])
    enter_call(olga.page, url)
    enter_call(ann.page, url)
    expect_full_mesh([olga, ann])
    # The transfers are listed where a person looks for them: with the chat.
    set_chat_open(olga.page, open=True)
    set_chat_open(ann.page, open=True)
    expect(olga.page.locator("#file-target")).to_have_value("all")

    olga.page.set_input_files("#file-input", path)

    incoming = transfers(ann.page, "in")
    expect(incoming).to_have_count(1, timeout=PAGE_TIMEOUT)
    link = incoming.locator("a.transfer-download")
    expect(link).to_be_visible(timeout=MEDIA_TIMEOUT)
    expect(link).to_have_attribute("download", "measurements.bin")
    expect(link).to_have_attribute("href", re.compile(r"^blob:"))
    expect(link).to_have_attribute("data-sha256", digest)
    received = download(ann.page, link)
    assert (len(received), hashlib.sha256(received).hexdigest()) == (size, digest)
    expect_progress_complete(incoming, size)
    expect(incoming.locator(".transfer-status")).not_to_be_empty()

    outgoing = transfers(olga.page, "out")
    expect(outgoing).to_have_count(1)
    expect_progress_complete(outgoing, size)


def test_a_call_goes_on_through_a_restart_of_the_server(site, call, person):
    url = site.call_url(call["slug"])
    olga = person("Olga", call["sessions"]["olga"])
    ann = person("Ann", call["sessions"]["ann"])
    enter_call(olga.page, url)
    enter_call(ann.page, url)
    expect_full_mesh([olga, ann])
    for someone in (olga, ann):
        expect_connection(someone.page, "connected")
        # Gone if the page reloads itself to reconnect.
        someone.page.evaluate("window.__marker = 1")

    site.stop(site.port)

    for someone in (olga, ann):
        expect_connection(someone.page, "reconnecting")
    # The media goes directly between the two; it must not wait for the server.
    expect_remote_video_playing(olga.page, "Ann")
    expect_remote_video_playing(ann.page, "Olga")

    site.start(site.port)

    for someone in (olga, ann):
        expect_connection(someone.page, "connected", timeout=RECONNECT_TIMEOUT)
        marker = someone.page.evaluate("window.__marker")
        assert marker == 1, f"{someone.name}'s page was reloaded to reconnect"
    expect_full_mesh([olga, ann])

    send_chat(ann.page, "Still here after the restart")
    set_chat_open(olga.page, open=True)
    line = chat_message(olga.page, "Still here after the restart")
    expect(line).to_be_visible(timeout=PAGE_TIMEOUT)
    expect(line.locator(".chat-author")).to_contain_text("Ann")

    # The restarted server knows both again: a newcomer gets a call with each of them.
    ben = person("Ben", call["sessions"]["ben"])
    enter_call(ben.page, url)
    expect_full_mesh([olga, ann, ben])


def test_a_guest_waits_in_the_lobby_until_admitted_and_stays_out_once_removed(
    site, lobby_call, person
):
    url = site.call_url(lobby_call["slug"])
    hana = person("Hana", lobby_call["sessions"]["hana"])
    gus = person("Gus", lobby_call["sessions"]["gus"])
    enter_call(hana.page, url)

    open_call(gus.page, url)
    gus.page.locator("#join-button").click()

    waiting = gus.page.locator("#lobby-notice")
    expect(waiting).to_be_visible(timeout=PAGE_TIMEOUT)
    expect(waiting).to_contain_text(re.compile("host", re.IGNORECASE))
    expect(remote_tiles(gus.page)).to_have_count(0)

    entry = lobby_entry(hana.page, "Gus")
    reveal(hana.page, entry, "#people-toggle")
    entry.locator("button.admit-button").click()

    expect(gus.page.locator("#call")).to_be_visible(timeout=PAGE_TIMEOUT)
    expect(waiting).to_be_hidden()
    expect_full_mesh([hana, gus])
    expect(lobby_entry(hana.page, "Gus")).to_have_count(0)

    participant = people_entry(hana.page, "Gus")
    reveal(hana.page, participant, "#people-toggle")
    participant.locator("button.kick-peer").click()

    ended = gus.page.locator("#call-ended")
    expect(ended).to_be_visible(timeout=PAGE_TIMEOUT)
    expect(ended).to_contain_text("removed")
    expect(ended.locator("#join-again")).to_be_hidden()  # it would only lead to a refusal
    expect(remote_tile(hana.page, "Gus")).to_have_count(0, timeout=LEAVE_TIMEOUT)

    # Coming back does not help: the page, or the server when he tries to join, refuses him.
    gus.page.goto(url)
    refusal = (
        gus.page.locator("#call-ended, [role=alert]")
        .filter(has_text=re.compile("removed", re.IGNORECASE))
        .filter(visible=True)
    )
    join_button = gus.page.locator("#join-button").filter(visible=True)
    expect(refusal.or_(join_button).first).to_be_visible(timeout=PAGE_TIMEOUT)
    if join_button.count():
        join_button.click()
    expect(refusal.first).to_be_visible(timeout=PAGE_TIMEOUT)
    expect(gus.page.locator("#call")).to_be_hidden()
    expect(lobby_entry(hana.page, "Gus")).to_have_count(0)
    expect(remote_tile(hana.page, "Gus")).to_have_count(0)


def test_without_camera_and_microphone_a_person_joins_to_watch_and_listen(
    site, call, person, denying_browser
):
    url = site.call_url(call["slug"])
    olga = person("Olga", call["sessions"]["olga"])
    enter_call(olga.page, url)
    ann = person("Ann", call["sessions"]["ann"], in_browser=denying_browser, permissions=[])
    # The premise, checked on another page of the site: this browser gives Ann no media.
    ann.page.goto(site.url + "/")
    assert ann.page.evaluate(GET_USER_MEDIA) == "NotAllowedError"

    open_call(ann.page, url)

    problem = ann.page.locator("#prejoin-error")
    expect(problem).to_be_visible(timeout=PAGE_TIMEOUT)
    expect(problem).to_contain_text(re.compile("camera|microphone", re.IGNORECASE))
    expect(ann.page.locator("#join-receive-only")).to_be_visible()
    join_call(ann.page, "#join-receive-only")

    expect_remote_video_playing(ann.page, "Olga")
    expect_remote_audio_live(ann.page, "Olga")
    expect(remote_tile(olga.page, "Ann")).to_be_visible(timeout=MEDIA_TIMEOUT)
    expect(remote_tile(olga.page, "Ann").locator(".tile-name")).to_contain_text("Ann")
    expect_no_picture(olga.page, remote_tile_selector("Ann"))


def test_a_late_joiner_gets_the_chat_so_far_and_sees_a_shared_screen(site, call, person):
    url = site.call_url(call["slug"])
    olga = person("Olga", call["sessions"]["olga"])
    ann = person("Ann", call["sessions"]["ann"])
    enter_call(olga.page, url)
    enter_call(ann.page, url)
    expect_remote_video_playing(olga.page, "Ann")
    send_chat(olga.page, "agenda: numbers first")
    expect(chat_message(ann.page, "agenda: numbers first")).to_have_count(1, timeout=PAGE_TIMEOUT)

    ben = person("Ben", call["sessions"]["ben"])
    enter_call(ben.page, url)
    set_chat_open(ben.page, open=True)

    # Handed over by one who was there, once, however many were.
    line = chat_message(ben.page, "agenda: numbers first")
    expect(line).to_have_count(1, timeout=MEDIA_TIMEOUT)
    expect(line.locator(".chat-author")).to_have_text("Olga")

    olga.page.locator("#screen-button").click()

    expect(olga.page.locator("#screen-button")).to_have_attribute("aria-pressed", "true")
    for viewer in (ann, ben):
        tile = remote_tile(viewer.page, "Olga")
        expect(tile.locator(".tile-icons")).to_contain_text("sharing screen", timeout=PAGE_TIMEOUT)
        expect_remote_video_playing(viewer.page, "Olga")
