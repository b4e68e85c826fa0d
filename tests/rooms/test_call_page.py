"""
The call page before its meeting opens: the countdown card over the pre-join screen as it will be
at the opening (static/js/opening.js shows it then, tests/browser/test_too_early.py watches it).
"""

import datetime as dt
import json
import re
import zoneinfo

import pytest
from django.test import Client
from django.utils import timezone

from rooms import services
from rooms.selectors import GUEST_SESSION_KEY
from tests.factories import MeetingFactory, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def scripts(page: str) -> list[str]:
    return re.findall(r'<script type="module" src="/static/js/([^"]+)"', page)


@pytest.fixture
def early():
    """A room whose meeting opens in an hour (ten minutes before its start), and an invitee."""
    owner = UserFactory(username="olga")
    room = RoomFactory(owner=owner, name="Planning", opens_minutes_before=10)
    starts_at = timezone.now() + dt.timedelta(minutes=70)
    MeetingFactory(room=room, starts_at=starts_at)
    ann = UserFactory(username="ann", display_name="Ann", time_zone="Europe/Paris")
    services.invitation_create(room=room, created_by=owner, user=ann)
    return {
        "room": room,
        "owner": owner,
        "ann": ann,
        "opens_at": starts_at - dt.timedelta(minutes=10),
    }


def test_the_page_counts_down_over_the_pre_join_screen_of_the_opening(early):
    response = signed_in(early["ann"]).get(early["room"].get_call_url())
    page = response.text

    assert response.status_code == 200
    opens_at = early["opens_at"].astimezone(zoneinfo.ZoneInfo("Europe/Paris"))
    text = " ".join(re.sub(r"<[^>]+>", "", page).split())
    assert f"This meeting opens at {opens_at:%a %-d %b %Y, %H:%M} (Europe/Paris time)" in text
    assert "You can join in 59 minutes" in text
    seconds = float(re.search(r'data-seconds-left="([\d.]+)"', page).group(1))
    assert 3590 < seconds <= 3600
    # The pre-join screen is there, hidden by the body's class until the opening.
    assert re.search(r'<body class="[^"]*\bcall-waiting\b', page)
    assert 'id="prejoin"' in page
    assert "You join as <strong>Ann</strong>" in page
    config = json.loads(re.search(r'id="call-config"[^>]*>(.*?)</script>', page, re.S).group(1))
    assert config["name"] == "Ann"
    # Only the countdown's script runs: call.js, which starts the camera, comes at the opening.
    assert scripts(page) == ["opening.js"]
    assert "data-browser-zone" not in page


def test_a_guest_is_told_the_time_in_the_browsers_zone(early):
    room = early["room"]
    _, token = services.invitation_create(room=room, created_by=early["owner"], allow_guests=True)
    guest = Client()
    guest.post(f"/i/{token}/", {"name": "Gus"})
    assert GUEST_SESSION_KEY in guest.session

    page = guest.get(room.get_call_url()).text

    assert "data-browser-zone" in page
    assert "You join as <strong>Gus</strong>" in page
    assert scripts(page) == ["opening.js"]


def test_a_person_the_opening_will_not_let_in_gets_the_countdown_alone(early):
    """An invitation that expires before the opening: at the opening the page asks again."""
    stranger = UserFactory(username="sam")
    services.invitation_create(
        room=early["room"],
        created_by=early["owner"],
        user=stranger,
        expires_at=timezone.now() + dt.timedelta(minutes=30),
    )

    page = signed_in(stranger).get(early["room"].get_call_url()).text

    assert "This meeting opens at" in page
    assert 'id="prejoin"' not in page
    assert 'id="call-config"' not in page
    assert scripts(page) == ["opening.js"]


def test_an_open_call_page_has_no_countdown(early):
    page = signed_in(early["owner"]).get(early["room"].get_call_url()).text

    assert 'id="opening"' not in page
    assert "call-waiting" not in page
    assert scripts(page) == ["call.js"]
