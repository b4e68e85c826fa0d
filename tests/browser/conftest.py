"""
Fixtures for the browser tests: the real site in a daphne process of its own, headless Chromium,
and people signed in to the site, each in a browser context (a separate cookie jar) of their own.

Chromium is Debian's (`playwright install` cannot download browsers here). Calls between contexts
are real WebRTC calls: host candidates, no STUN or TURN server (the site's settings name none).
"""

import pytest
from playwright.sync_api import sync_playwright

from tests.browser.pages import VIEWPORT, Person
from tests.live_site import SESSIONS, LiveSite

CHROMIUM = "/usr/bin/chromium"

# The fake camera shows a moving test pattern and the fake microphone beeps. Host names resolve
# to nothing, so that Chromium's own calls to Google's services never leave the machine; the site
# is at 127.0.0.1, an address that needs no resolving.
#
# Calls between contexts use host candidates only. Chromium gathers them on the machine's network
# interfaces and leaves out loopback (with --allow-loopback-in-peer-connection it adds 127.0.0.1
# and ::1 but ranks them below the other interfaces, so they still go unused); here a call runs
# between two of the machine's own addresses (on this machine eth0's fd00::2 or 192.0.2.2), which
# the kernel delivers locally: no packet reaches the wire.
MEDIA_ARGS = [
    "--no-sandbox",
    "--use-fake-device-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
# A page without camera or microphone permission would hide its host candidates behind mDNS
# names (`<uuid>.local`), and Chromium would send multicast mDNS packets on the network to
# announce and resolve them.
DISABLED_FEATURES = ["WebRtcHideLocalIpsWithMdns"]
# Grants every camera and microphone request without asking.
GRANT_MEDIA = "--use-fake-ui-for-media-stream"

# Reports of each phase of a test, so that fixtures can tell in their teardown whether it failed.
phase_reports = pytest.StashKey[dict]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    item.stash.setdefault(phase_reports, {})[report.when] = report
    return report


def failed(request) -> bool:
    reports = request.node.stash.get(phase_reports, {})
    return any(report.failed for report in reports.values())


class BrowserSite(LiveSite):
    """A LiveSite on one port, which a test may stop and start again on that same port."""

    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call_url(self, slug: str) -> str:
        return f"{self.url}/rooms/{slug}/call/"


@pytest.fixture
def site(tmp_path):
    """The site in one daphne process, on SQLite and the in-memory channel layer (no Redis)."""
    site = BrowserSite(tmp_path)
    site.port = site.start()
    yield site
    site.stop_all()


@pytest.fixture
def sfu_site(tmp_path, janus_server):
    """
    The site in one daphne process, as `site`, with a media server: the test session's Janus.

    A module that tests calls through the media server makes it its `site`, so that `person`
    and the seed fixtures use it: `def site(sfu_site): return sfu_site`.
    """
    site = BrowserSite(
        tmp_path, JANUS_URL=janus_server.url, JANUS_API_SECRET=janus_server.api_secret
    )
    site.port = site.start()
    yield site
    site.stop_all()


SEED_MEMBERS_CALL = """
from tests.factories import RoomFactory, UserFactory

owner = UserFactory(username="olga", display_name="Olga")
room = RoomFactory(owner=owner, name="Stand-up", access="members")
people = {"olga": owner}
for username in ["ann", "ben"]:
    people[username] = UserFactory(username=username, display_name=username.title())
print(json.dumps({
    "slug": room.slug,
    "sessions": {username: session_for(user) for username, user in people.items()},
}))
"""

SEED_LOBBY_CALL = """
from rooms import services
from rooms.selectors import GUEST_SESSION_KEY
from tests.factories import RoomFactory, UserFactory

owner = UserFactory(username="hana", display_name="Hana")
room = RoomFactory(owner=owner, name="Office hours", access="invited", lobby_enabled=True)
_invitation, token = services.invitation_create(room=room, created_by=owner, allow_guests=True)
_invitation, guest = services.invitation_redeem(token=token, guest_name="Gus")
print(json.dumps({
    "slug": room.slug,
    "sessions": {
        "hana": session_for(owner),
        "gus": session_with({GUEST_SESSION_KEY: {str(room.pk): str(guest.pk)}}),
    },
}))
"""


@pytest.fixture
def call(site) -> dict:
    """
    A room open to members, owned by Olga; signed-in sessions for Olga, Ann and Ben.

    Returns {"slug": ..., "sessions": {"olga": key, "ann": key, "ben": key}}.
    """
    return site.run(SESSIONS + SEED_MEMBERS_CALL)


@pytest.fixture
def lobby_call(site) -> dict:
    """
    A room with the lobby on, owned by Hana, and Gus: a guest by an invitation link for guests.

    Gus's session holds the guest as the invitation page would have left it; not being personally
    invited, he waits in the lobby. Returns {"slug": ..., "sessions": {"hana": ..., "gus": ...}}.
    """
    return site.run(SESSIONS + SEED_LOBBY_CALL)


@pytest.fixture(scope="module")
def playwright():
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def playwright_disabled_features(playwright) -> str:
    return disabled_features_of(playwright)


def disabled_features_of(playwright) -> str:
    """
    Return the --disable-features switch Playwright passes to Chromium.

    Chromium keeps only the last --disable-features switch it is given, so ours must replace
    Playwright's with both lists, or the features Playwright disables (some of which call Google's
    servers) come back. Chromium tells its command line over CDP when automation is on.
    """
    probe = playwright.chromium.launch(
        executable_path=CHROMIUM, args=[*MEDIA_ARGS, "--enable-automation"]
    )
    try:
        command_line = probe.new_browser_cdp_session().send("Browser.getBrowserCommandLine")
    finally:
        probe.close()
    found = [arg for arg in command_line["arguments"] if arg.startswith("--disable-features=")]
    return found[-1] if found else ""


def launch_chromium(playwright, playwright_disabled_features: str, *args: str):
    features = [*playwright_disabled_features.partition("=")[2].split(","), *DISABLED_FEATURES]
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        ignore_default_args=[playwright_disabled_features] if playwright_disabled_features else [],
        args=[*MEDIA_ARGS, *args, "--disable-features=" + ",".join(filter(None, features))],
    )


@pytest.fixture(scope="module")
def browser(playwright, playwright_disabled_features):
    """Headless Chromium whose pages get the fake camera and microphone without asking."""
    browser = launch_chromium(playwright, playwright_disabled_features, GRANT_MEDIA)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def denying_browser(playwright, playwright_disabled_features):
    """
    Headless Chromium in which a context made with `permissions=[]` gets no camera or microphone.

    In the `browser` fixture's Chromium, --use-fake-ui-for-media-stream grants getUserMedia even
    to a context made with `permissions=[]` (navigator.permissions then says "denied", but the
    stream comes anyway). Without that switch Playwright's permissions decide: getUserMedia fails
    with NotAllowedError ("Permission denied") in a context that was granted neither "camera" nor
    "microphone".
    """
    browser = launch_chromium(playwright, playwright_disabled_features)
    yield browser
    browser.close()


@pytest.fixture
def person(request, site, browser):
    """
    Open a browser context for one person, signed in by their session cookie, with one page.

    `person("Ann", call["sessions"]["ann"])`; pass `in_browser=denying_browser,
    permissions=[]` for a person without camera and microphone. Everything the pages log is
    printed when the test fails, with the site's log.
    """
    people: list[Person] = []

    def open_person(name: str, session_key: str, *, in_browser=None, **context_options) -> Person:
        context = (in_browser or browser).new_context(viewport=VIEWPORT, **context_options)
        context.add_cookies([{"name": "sessionid", "value": session_key, "url": site.url}])
        page = context.new_page()
        someone = Person(name=name, context=context, page=page)
        someone.record_page_events()
        people.append(someone)
        return someone

    yield open_person

    if failed(request):
        for someone in people:
            print(f"\n--- what {someone.name}'s page logged ---")
            print("\n".join(someone.events[-80:]) or "(nothing)")
        print(f"\n--- daphne on port {site.port} ---")
        print(site.log(site.port)[-4000:])
    for someone in people:
        someone.context.close()
