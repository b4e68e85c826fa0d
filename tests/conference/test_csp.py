"""
The Content-Security-Policy header: on every response, only the site's own scripts and styles.

Whether the pages keep to it is for tests/browser/test_csp.py, where Chromium enforces it.
"""

import pytest
from django.urls import reverse

from tests.factories import RoomFactory

pytestmark = pytest.mark.django_db


def policy_of(response) -> dict[str, list[str]]:
    """Return the response's Content-Security-Policy as {directive: [source, ...]}."""
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy header on {response.request['PATH_INFO']}"
    directives = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


def test_pages_run_only_the_sites_own_script_files_and_style_sheets(client):
    policy = policy_of(client.get(reverse("home")))

    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["form-action"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]


def test_no_directive_allows_inline_code_eval_or_another_origin(client):
    policy = policy_of(client.get(reverse("home")))

    for directive, sources in policy.items():
        # 'self' and 'none' only: no 'unsafe-inline', 'unsafe-eval', host, scheme or wildcard.
        assert set(sources) <= {"'self'", "'none'"}, f"{directive} allows {sources}"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param(reverse("account_login"), 200, id="sign-in"),
        pytest.param(reverse("admin:login"), 200, id="admin sign-in"),
        # Served by WhiteNoise's middleware, which answers before the URL resolver.
        pytest.param("/static/favicon.svg", 200, id="static file"),
        pytest.param("/no/such/page/", 404, id="not found"),
    ],
)
def test_every_response_carries_the_policy(client, path, status):
    response = client.get(path)

    assert response.status_code == status
    assert policy_of(response)["script-src"] == ["'self'"]


def test_the_call_page_carries_the_policy(alice_client, user):
    room = RoomFactory(owner=user)

    response = alice_client.get(reverse("rooms:call", args=[room.slug]))

    assert response.status_code == 200
    assert policy_of(response)["script-src"] == ["'self'"]
