"""
Every page a person reaches keeps to the site's Content-Security-Policy, as Chromium enforces it.

A page that breaks the policy still loads: Chromium only refuses the inline script, the style
attribute or the other origin's file, fires a `securitypolicyviolation` event and logs an error.
So each browser context here reports both to the test, and a test fails on any of them, naming
the page and what was blocked by which directive.
"""

import re

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, expect

from tests.browser.pages import (
    MEDIA_TIMEOUT,
    PAGE_TIMEOUT,
    chat_message,
    enter_call,
    expect_remote_video_playing,
    join_call,
    open_call,
    people_entry,
    send_chat,
    set_chat_open,
    set_panel_open,
    transfers,
)
from tests.factories import PASSWORD
from tests.live_site import SESSIONS

pytestmark = pytest.mark.browser

# Runs in every document before the page's own scripts (Playwright's init scripts are not subject
# to the page's policy). The event bubbles from the element that broke the policy to the document.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
    window.reportCspViolation({
        directive: event.effectiveDirective,
        blocked: event.blockedURI,
        source: `${event.sourceFile}:${event.lineNumber}:${event.columnNumber}`,
        document: event.documentURI,
    });
});
"""

# Lets the reports of what the page did so far reach the test: a round trip through the page's
# event loop after its pending tasks, one of which may be firing a violation event.
SETTLE = "() => new Promise((resolve) => setTimeout(resolve, 0))"


class ViolationWatch:
    """The policy violations the pages of some browser contexts report, by the page they were on."""

    def __init__(self):
        self.step = "(before the first page)"
        self.violations: list[str] = []

    def attach(self, context: BrowserContext, who: str) -> None:
        def report(_source, violation: dict) -> None:
            self.violations.append(
                f"{self.step} ({who}): {violation['directive']} blocked {violation['blocked']!r} "
                f"at {violation['source']} on {violation['document']}"
            )

        def console(message: ConsoleMessage) -> None:
            if "Content Security Policy" in message.text:
                self.violations.append(f"{self.step} ({who}): console: {message.text}")

        context.expose_binding("reportCspViolation", report)
        context.add_init_script(REPORT_VIOLATIONS)
        context.on("console", console)

    def settle(self, *pages: Page) -> None:
        for page in pages:
            page.evaluate(SETTLE)

    def expect_none(self) -> None:
        assert not self.violations, "Content-Security-Policy violations:\n" + "\n".join(
            self.violations
        )


def visit(watch: ViolationWatch, page: Page, step: str, url: str) -> None:
    """Open a page as a person would, and require it to come with the policy."""
    watch.step = step
    response = page.goto(url)
    assert response is not None, f"{step}: no response for {url}"
    assert response.ok, f"{step}: {url} answered {response.status}"
    policy = response.all_headers().get("content-security-policy", "")
    assert re.search(r"(^|;)\s*script-src 'self'\s*(;|$)", policy), (
        f"{step}: {url} came without the site's script-src: {policy!r}"
    )
    watch.settle(page)


SEED_SITE = """
import datetime as dt

from django.utils import timezone

from rooms import services
from tests.factories import MeetingFactory, RoomFactory, UserFactory

olga = UserFactory(
    username="olga", display_name="Olga", is_staff=True, is_superuser=True
)
ann = UserFactory(username="ann", display_name="Ann")
standup = RoomFactory(owner=olga, name="Stand-up", access="members")
planning = RoomFactory(owner=olga, name="Planning", access="members")
meeting = MeetingFactory(
    room=planning, title="Quarterly planning", starts_at=timezone.now() + dt.timedelta(days=2)
)
_invitation, token = services.invitation_create(
    room=planning, created_by=olga, meeting=meeting, allow_guests=True
)
print(json.dumps({
    "standup": standup.slug,
    "planning": planning.slug,
    "standup_pk": standup.pk,
    "meeting_pk": meeting.pk,
    "olga_pk": olga.pk,
    "token": token,
    "sessions": {
        "olga": session_for(olga),
        "ann": session_for(ann),
        "visitor": session_with({}),
    },
}))
"""


@pytest.fixture
def seeded(site) -> dict:
    """
    Olga, a superuser who owns two rooms open to members; Ann, a member; and a visitor.

    Stand-up has no meetings, so its call is open; Planning's one meeting is in two days, and an
    invitation link to it lets guests in.
    """
    return site.run(SESSIONS + SEED_SITE)


@pytest.fixture
def watch() -> ViolationWatch:
    return ViolationWatch()


def test_the_signed_out_pages_keep_to_the_policy(site, seeded, person, watch):
    visitor = person("Visitor", seeded["sessions"]["visitor"])
    watch.attach(visitor.context, "signed out")
    page = visitor.page

    visit(watch, page, "home", f"{site.url}/")
    visit(watch, page, "sign-up", f"{site.url}/accounts/signup/")
    visit(watch, page, "password reset", f"{site.url}/accounts/password/reset/")
    visit(watch, page, "invitation landing", f"{site.url}/i/{seeded['token']}/")
    expect(page.locator("input[name=name]")).to_be_visible()

    # Joining as a guest posts the form and lands on the call page, which is not open yet.
    watch.step = "joining as a guest"
    page.locator("input[name=name]").fill("Gus")
    page.get_by_role("button", name="Join as a guest").click()
    expect(page.get_by_text("This meeting opens at")).to_be_visible(timeout=PAGE_TIMEOUT)
    watch.settle(page)

    visit(watch, page, "sign-in", f"{site.url}/accounts/login/")
    page.locator("input[name=login]").fill("ann")
    page.locator("input[name=password]").fill(PASSWORD)
    watch.step = "signing in"
    page.locator("form button[type=submit]").filter(has_text="Sign In").click()
    expect(page.locator(".nav-user")).to_have_text("Signed in as Ann", timeout=PAGE_TIMEOUT)
    watch.settle(page)

    watch.expect_none()


def test_signing_up_and_confirming_the_address_keep_to_the_policy(site, seeded, person, watch):
    visitor = person("Visitor", seeded["sessions"]["visitor"])
    watch.attach(visitor.context, "signed out")
    page = visitor.page

    visit(watch, page, "sign-up", f"{site.url}/accounts/signup/")
    watch.step = "signing up"
    page.locator("input[name=username]").fill("carol")
    page.locator("input[name=email]").fill("carol@example.com")
    page.locator("input[name=password1]").fill(PASSWORD)
    page.locator("input[name=password2]").fill(PASSWORD)
    page.locator("form button[type=submit]").filter(has_text="Sign Up").click()
    expect(page).not_to_have_url(re.compile(r"/accounts/signup/$"), timeout=PAGE_TIMEOUT)
    watch.settle(page)

    # The console email backend prints the confirmation mail to the site's log.
    link = re.search(r"http://\S+/accounts/confirm-email/[^/\s]+/", site.log(site.port))
    assert link, "no confirmation link in the site's log"
    visit(watch, page, "email confirmation", link.group())
    watch.step = "confirming the address"
    page.locator("form button[type=submit]").filter(has_text="Confirm").click()
    expect(page.get_by_text("You have confirmed")).to_be_visible(timeout=PAGE_TIMEOUT)
    watch.settle(page)

    watch.expect_none()


def test_the_signed_in_pages_and_the_admin_keep_to_the_policy(site, seeded, person, watch):
    olga = person("Olga", seeded["sessions"]["olga"])
    watch.attach(olga.context, "Olga")
    page = olga.page
    standup = f"{site.url}/rooms/{seeded['standup']}"
    meeting = f"{site.url}/rooms/{seeded['planning']}/meetings/{seeded['meeting_pk']}"

    for step, url in [
        ("home", f"{site.url}/"),
        ("dashboard", f"{site.url}/dashboard/"),
        ("calendar", f"{site.url}/calendar/"),
        ("room list", f"{site.url}/rooms/"),
        ("new room", f"{site.url}/rooms/new/"),
        ("room detail", f"{standup}/"),
        ("room edit", f"{standup}/edit/"),
        ("room delete", f"{standup}/delete/"),
        ("new meeting", f"{standup}/meetings/new/"),
        ("meeting detail", f"{meeting}/"),
        ("meeting edit", f"{meeting}/edit/"),
        ("invitations", f"{standup}/invitations/"),
        ("profile", f"{site.url}/accounts/profile/"),
        ("change password", f"{site.url}/accounts/password/change/"),
        ("email addresses", f"{site.url}/accounts/email/"),
        ("admin index", f"{site.url}/admin/"),
        ("admin room list", f"{site.url}/admin/rooms/room/"),
        ("admin room", f"{site.url}/admin/rooms/room/{seeded['standup_pk']}/change/"),
        ("admin meeting", f"{site.url}/admin/rooms/meeting/{seeded['meeting_pk']}/change/"),
        ("admin user", f"{site.url}/admin/accounts/user/{seeded['olga_pk']}/change/"),
    ]:
        visit(watch, page, step, url)

    # The admin's date and time shortcuts build their pop-ups with script.
    visit(watch, page, "admin new meeting", f"{site.url}/admin/rooms/meeting/add/")
    page.locator("#calendarlink0").click()
    expect(page.locator("#calendarbox0")).to_be_visible()
    page.locator("#clocklink0").click()
    expect(page.locator("#clockbox0")).to_be_visible()
    watch.settle(page)

    watch.expect_none()


def test_a_call_keeps_to_the_policy(site, seeded, person, watch, tmp_path):
    olga = person("Olga", seeded["sessions"]["olga"])
    ann = person("Ann", seeded["sessions"]["ann"])
    watch.attach(olga.context, "Olga")
    watch.attach(ann.context, "Ann")
    url = site.call_url(seeded["standup"])

    visit(watch, ann.page, "too-early page", site.call_url(seeded["planning"]))
    expect(ann.page.get_by_text("This meeting opens at")).to_be_visible()

    watch.step = "pre-join"
    open_call(olga.page, url)
    expect(olga.page.locator("video#preview")).to_be_visible()
    watch.settle(olga.page)

    watch.step = "in the call"
    join_call(olga.page)
    enter_call(ann.page, url)
    # A picture over the peer connection, which the websocket set up.
    expect_remote_video_playing(olga.page, "Ann")
    expect_remote_video_playing(ann.page, "Olga")

    watch.step = "people and chat panels"
    set_panel_open(olga.page, "#people-panel", "#people-toggle", open=True)
    expect(people_entry(olga.page, "Ann")).to_be_visible(timeout=PAGE_TIMEOUT)
    set_chat_open(ann.page, open=True)
    send_chat(olga.page, "Hello, Ann")
    expect(chat_message(ann.page, "Hello, Ann")).to_be_visible(timeout=PAGE_TIMEOUT)

    watch.step = "a file, saved from its blob: link"
    path = tmp_path / "notes.txt"
    path.write_text("the agenda\n")
    olga.page.set_input_files("#file-input", path)
    link = transfers(ann.page, "in").locator("a.transfer-download")
    expect(link).to_have_attribute("href", re.compile(r"^blob:"), timeout=MEDIA_TIMEOUT)
    with ann.page.expect_download() as saved:
        link.click()
    assert saved.value.path().read_text() == "the agenda\n"

    watch.step = "screen sharing"
    olga.page.locator("#screen-button").click()
    expect(olga.page.locator("#screen-button")).to_have_attribute("aria-pressed", "true")
    expect_remote_video_playing(ann.page, "Olga")

    watch.settle(olga.page, ann.page)
    watch.expect_none()


def test_the_watch_reports_an_inline_script(site, seeded, person, watch):
    """The other tests cannot pass by a watch that sees nothing."""
    visitor = person("Visitor", seeded["sessions"]["visitor"])
    watch.attach(visitor.context, "signed out")
    visit(watch, visitor.page, "home", f"{site.url}/")

    visitor.page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "document.body.dataset.ran = 'yes'";
            document.body.append(script);
        }"""
    )
    watch.settle(visitor.page)

    expect(visitor.page.locator("body")).not_to_have_attribute("data-ran", "yes")
    assert any("script-src-elem blocked 'inline'" in line for line in watch.violations), (
        watch.violations
    )
