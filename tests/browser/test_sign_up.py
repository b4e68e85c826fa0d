"""Sign-up proposes the time zone of the browser it is made in, rather than UTC."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/Sao_Paulo"])
def test_sign_up_starts_at_the_browsers_time_zone(site, browser, zone):
    context = browser.new_context(timezone_id=zone)
    try:
        page = context.new_page()
        page.goto(f"{site.url}/accounts/signup/")

        expect(page.locator("select[name=time_zone]")).to_have_value(zone)
    finally:
        context.close()
