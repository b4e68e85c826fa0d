"""
The call page before its meeting opens: it counts down, names the time zone, and turns into the
pre-join screen when the window opens, without a reload; joining then works. The dashboard's Join
button counts down to the same opening and comes alive.
"""

import datetime as dt
import re
import zoneinfo

import pytest
from playwright.sync_api import expect

from tests.browser.pages import enter_call, expect_remote_video_playing, join_call
from tests.live_site import SESSIONS

pytestmark = pytest.mark.browser

# Seconds from seeding to the opening: enough to load the pages and watch them count down.
LEAD_SECONDS = 12

SEED_EARLY_MEETING = """
import datetime as dt

from django.utils import timezone

from rooms import services
from rooms.selectors import GUEST_SESSION_KEY
from tests.factories import MeetingFactory, RoomFactory, UserFactory

owner = UserFactory(username="olga", display_name="Olga")
room = RoomFactory(owner=owner, name="Planning", opens_minutes_before=1)
opens_at = timezone.now() + dt.timedelta(seconds=LEAD_SECONDS)
MeetingFactory(room=room, title="Planning", starts_at=opens_at + dt.timedelta(minutes=1))
ann = UserFactory(username="ann", display_name="Ann", time_zone="Europe/Paris")
services.invitation_create(room=room, created_by=owner, user=ann)
_invitation, token = services.invitation_create(room=room, created_by=owner, allow_guests=True)
_invitation, gus = services.invitation_redeem(token=token, guest_name="Gus")
print(json.dumps({
    "slug": room.slug,
    "opens_at": opens_at.isoformat(),
    "sessions": {
        "olga": session_for(owner),
        "ann": session_for(ann),
        "gus": session_with({GUEST_SESSION_KEY: {str(room.pk): str(gus.pk)}}),
    },
}))
"""

# Set before the opening: still there after it only if the page was not loaded again.
MARK_PAGE = "() => { window.beforeOpening = true; }"
PAGE_IS_THE_SAME = "() => window.beforeOpening === true"


@pytest.fixture
def early(site) -> dict:
    """A meeting in Olga's room that opens LEAD_SECONDS after seeding; Ann and Gus are invited."""
    return site.run(f"LEAD_SECONDS = {LEAD_SECONDS}\n" + SESSIONS + SEED_EARLY_MEETING)


def test_the_too_early_page_becomes_the_pre_join_screen_at_the_opening(site, early, person):
    url = site.call_url(early["slug"])
    opens_at = dt.datetime.fromisoformat(early["opens_at"])
    olga = person("Olga", early["sessions"]["olga"])
    ann = person("Ann", early["sessions"]["ann"])
    gus = person("Gus", early["sessions"]["gus"], timezone_id="Asia/Tokyo")
    requested = []
    ann.page.on("request", lambda request: requested.append(request.url))

    ann.page.goto(url)
    gus.page.goto(url)

    for page in [ann.page, gus.page]:
        expect(page.locator("#opening")).to_contain_text("This meeting opens at")
        expect(page.locator("#prejoin")).to_be_hidden()
        page.evaluate(MARK_PAGE)
    # Ann's time zone is her profile's; Gus, a guest, has his browser's.
    paris, tokyo = (
        opens_at.astimezone(zoneinfo.ZoneInfo(zone)) for zone in ("Europe/Paris", "Asia/Tokyo")
    )
    expect(ann.page.locator("#opening-zone")).to_have_text("Europe/Paris")
    expect(ann.page.locator("#opening-time")).to_contain_text(f"{paris:%H:%M}")
    expect(gus.page.locator("#opening-zone")).to_have_text("Asia/Tokyo")
    expect(gus.page.locator("#opening-time")).to_contain_text(f"{tokyo:%H:%M}")
    # It counts down, by the second.
    left = ann.page.locator("#opening-left")
    expect(left).to_have_text(re.compile(r"^\d+ sec$"))
    before = left.text_content()
    expect(left).not_to_have_text(before, timeout=3000)
    # Nothing of the call runs yet: no camera, no websocket.
    assert not [url for url in requested if "/static/js/call." in url]
    # A host may come in at any time.
    enter_call(olga.page, url)

    # The opening: the pre-join screen of the same page, without a reload.
    opening_timeout = (LEAD_SECONDS + 15) * 1000
    for page, name in [(ann.page, "Ann"), (gus.page, "Gus")]:
        expect(page.locator("#join-button")).to_be_enabled(timeout=opening_timeout)
        expect(page.locator("#opening")).to_be_hidden()
        expect(page.locator("#prejoin")).to_contain_text(f"You join as {name}")
        assert page.evaluate(PAGE_IS_THE_SAME)
    expect(ann.page.locator("video#preview")).to_be_visible()

    join_call(ann.page)
    expect_remote_video_playing(ann.page, "Olga")
    expect_remote_video_playing(olga.page, "Ann")
    assert ann.page.evaluate(PAGE_IS_THE_SAME)


def test_the_dashboards_join_button_counts_down_and_comes_alive(site, early, person):
    ann = person("Ann", early["sessions"]["ann"])
    ann.page.goto(f"{site.url}/dashboard/")
    pending = ann.page.locator(".join-pending")

    expect(pending.locator(".countdown")).to_have_text(re.compile(r"^opens in \d+ sec$"))
    expect(pending.get_by_role("link", name="Join")).to_have_attribute(
        "href", f"/rooms/{early['slug']}/call/", timeout=(LEAD_SECONDS + 15) * 1000
    )
    expect(pending.locator(".countdown")).to_have_text("")
