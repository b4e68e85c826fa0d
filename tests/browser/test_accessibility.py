"""
axe-core on every page a person reaches around the call: no serious or critical violation.

The call page itself (pre-join and in the call, with its panels) is checked in
tests/browser/test_call_accessibility.py. The admin's lists also fit a 1280 px wide screen.
"""

import pytest
from playwright.sync_api import Page, expect

from tests.browser.axe import violations
from tests.live_site import SESSIONS

pytestmark = pytest.mark.browser

SEED_SITE = """
import datetime as dt

from django.utils import timezone

from rooms import services
from rooms.models import Attendance
from tests.factories import MeetingFactory, RoomFactory, UserFactory

now = timezone.now()
olga = UserFactory(
    username="olga", display_name="Olga Kowalczyk", is_staff=True, is_superuser=True,
    time_zone="Europe/Warsaw",
)
ann = UserFactory(username="ann", display_name="Ann")
room = RoomFactory(
    owner=olga, name="Quarterly planning", description="Where the plans are made.",
    opens_minutes_before=10,
)
weekly = MeetingFactory(
    room=room, title="Weekly review",
    starts_at=(now + dt.timedelta(minutes=5)).replace(second=0, microsecond=0),
    recurrence="FREQ=WEEKLY;COUNT=10",
)
later = MeetingFactory(room=room, title="Budget", starts_at=now + dt.timedelta(hours=2))
services.invitation_create(room=room, created_by=olga, user=ann, meeting=later)
services.invitation_create(room=room, created_by=olga, email="someone@example.com")
tokens = {}
for label in ["Newsletter", "Ann's team", ""]:
    _invitation, tokens[label] = services.invitation_create(
        room=room, created_by=olga, label=label, allow_guests=True, max_uses=20,
        expires_at=now + dt.timedelta(days=7),
    )
token = tokens[""]
_invitation, gus = services.invitation_redeem(token=token, guest_name="Gus")
_invitation, troll = services.invitation_redeem(token=tokens["Newsletter"], guest_name="Troll")
services.ban_create(room=room, guest=troll, created_by=olga)
services.invitation_redeem(token=tokens["Ann's team"], user=UserFactory(username="ben"))
services.occurrence_cancel(meeting=weekly, starts_at=weekly.starts_at + dt.timedelta(days=7))
joined = now - dt.timedelta(days=1)
for name, user, guest in [("Olga Kowalczyk", olga, None), ("Ann", ann, None), ("Gus", None, gus)]:
    Attendance.objects.create(
        room=room, meeting=weekly, occurrence_starts_at=joined, user=user, guest=guest,
        name=name, role="host" if user == olga else "participant", joined_at=joined,
        left_at=joined + dt.timedelta(minutes=47),
    )
print(json.dumps({
    "slug": room.slug,
    "meeting_pk": weekly.pk,
    "token": token,
    "sessions": {"olga": session_for(olga), "ann": session_for(ann)},
}))
"""

# The admin's lists, by their address under /admin/.
ADMIN_LISTS = [
    "rooms/room/",
    "rooms/meeting/",
    "rooms/cancelledoccurrence/",
    "rooms/invitation/",
    "rooms/guest/",
    "rooms/redemption/",
    "rooms/ban/",
    "rooms/attendance/",
    "accounts/user/",
    "account/emailaddress/",
]


FITTING = """() => {
    const box = document.querySelector("#changelist .results");
    return {
        page: document.documentElement.scrollWidth,
        box: box.clientWidth,
        results: box.scrollWidth,
    };
}"""


@pytest.fixture
def seeded(site) -> dict:
    """
    Olga, a superuser, owns a room with a meeting opening in minutes and another in two hours.

    Ann is invited to the later one only, so that its call page is too early for her. Three
    invitation links, two guests (one banned), a member who came by a link, a cancelled
    occurrence and a past call's attendance fill the admin's lists.
    """
    return site.run(SESSIONS + SEED_SITE)


def expect_accessible(page: Page, step: str) -> None:
    found = violations(page)
    assert not found, f"{step}: " + "\n".join(
        f"{violation['id']} ({violation['impact']}): {violation['help']} at "
        + ", ".join(node["target"] for node in violation["nodes"])
        for violation in found
    )


def visit(page: Page, url: str) -> None:
    response = page.goto(url)
    assert response is not None and response.ok, f"{url} answered {response and response.status}"


def test_the_signed_out_pages_are_accessible(site, seeded, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        for step, path in [
            ("sign-up", "/accounts/signup/"),
            ("sign-in", "/accounts/login/"),
            ("invitation landing", f"/i/{seeded['token']}/"),
        ]:
            visit(page, site.url + path)
            expect_accessible(page, step)
    finally:
        context.close()


def test_the_signed_in_pages_are_accessible(site, seeded, person):
    olga = person("Olga", seeded["sessions"]["olga"])
    ann = person("Ann", seeded["sessions"]["ann"])
    slug = seeded["slug"]
    for step, path in [
        ("dashboard", "/dashboard/"),
        ("calendar", "/calendar/"),
        ("calendar month", "/calendar/?view=month"),
        ("room", f"/rooms/{slug}/"),
        ("meeting", f"/rooms/{slug}/meetings/{seeded['meeting_pk']}/"),
        ("invitations", f"/rooms/{slug}/invitations/"),
        ("admin index", "/admin/"),
    ]:
        visit(olga.page, site.url + path)
        expect_accessible(olga.page, step)

    visit(ann.page, site.call_url(slug))
    expect(ann.page.locator("#opening")).to_be_visible()
    expect_accessible(ann.page, "too-early")


def test_the_admin_lists_fit_a_1280_px_screen(site, seeded, person):
    olga = person("Olga", seeded["sessions"]["olga"])
    too_wide = {}
    for path in ADMIN_LISTS:
        visit(olga.page, f"{site.url}/admin/{path}")
        expect(olga.page.locator("#result_list")).to_be_visible()
        # The list scrolls sideways inside its own box when it does not fit.
        widths = olga.page.evaluate(FITTING)
        if widths["results"] > widths["box"] or widths["page"] > 1280:
            too_wide[path] = widths
    assert too_wide == {}
