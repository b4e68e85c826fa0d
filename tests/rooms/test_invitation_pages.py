"""
The host's invitations page and the page an invitation link opens.

A host tells links apart by their label, uses, expiry and creation time, and cannot make a link
that has already expired. A link nobody new can use shows its explanation and no form.
"""

import datetime as dt
import html
import re
import zoneinfo

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from rooms import services
from rooms.models import Guest, Invitation
from tests.factories import RoomFactory, UserFactory
from tests.rooms.test_invitations import fresh_rate_limits, link_path, signed_in  # noqa: F401

pytestmark = pytest.mark.django_db

USED_UP = "This invitation link has been used as many times as it may be."


def rows(page: str) -> list[list[str]]:
    """Return the text of the invitations table's cells, row by row."""
    body = page.split("<tbody>")[1].split("</tbody>")[0]
    return [
        [
            " ".join(html.unescape(re.sub(r"<[^>]+>", " ", cell)).split())
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def test_links_are_told_apart_by_label_uses_expiry_and_creation_time():
    host = UserFactory(time_zone="Europe/Paris")
    room = RoomFactory(owner=host)
    client = signed_in(host)
    page = reverse("rooms:invitations", args=[room.slug])
    expiry = (timezone.localdate() + dt.timedelta(days=3)).isoformat() + "T18:30"
    for label, extra in [
        ("Newsletter", {"link-max_uses": "50", "link-expires_at": expiry}),
        ("Ann's team", {"link-max_uses": "3"}),
        ("", {}),
    ]:
        response = client.post(
            page,
            {"link-label": label, "link-allow_guests": "on", "link-role": "participant", **extra},
        )
        assert response.status_code == 200
        assert "Your new invitation link" in response.text
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    created = {
        invitation.label: invitation.created_at.astimezone(paris).strftime("%-d %b %Y, %H:%M")
        for invitation in Invitation.objects.all()
    }

    listed = rows(client.get(page).text)

    newest_first = ["", "Ann's team", "Newsletter"]
    assert [row[0] for row in listed] == [
        f"{label} Link (guests allowed)".strip() for label in newest_first
    ]
    expiry_shown = dt.date.fromisoformat(expiry[:10]).strftime("%-d %b %Y") + ", 18:30"
    assert [row[4:6] for row in listed] == [["0", "—"], ["0 / 3", "—"], ["0 / 50", expiry_shown]]
    # Times in the host's own zone.
    assert [row[6] for row in listed] == [created[label] for label in newest_first]


def test_an_expiry_in_the_past_is_refused_beside_the_field():
    host = UserFactory()
    room = RoomFactory(owner=host)
    yesterday = (timezone.localdate() - dt.timedelta(days=1)).isoformat() + "T12:00"

    response = signed_in(host).post(
        reverse("rooms:invitations", args=[room.slug]),
        {"link-allow_guests": "on", "link-role": "participant", "link-expires_at": yesterday},
    )

    errors = re.search(r'id="id_link-expires_at_error">(.*?)</ul>', response.text, re.S)
    assert errors is not None
    assert "That time has already passed." in errors.group(1)
    assert "Your new invitation link" not in response.text
    assert not Invitation.objects.exists()


def test_a_used_up_link_shows_only_the_explanation():
    host = UserFactory()
    room = RoomFactory(owner=host)
    _, token = services.invitation_create(room=room, created_by=host, allow_guests=True, max_uses=1)
    first = Client()
    first.post(link_path(token), {"name": "Gus"})

    page = Client().get(link_path(token))
    sent = Client().post(link_path(token), {"name": "Gail"})
    member = signed_in(UserFactory()).get(link_path(token))

    for response in [page, sent, member]:
        assert USED_UP in response.text
        assert 'name="name"' not in response.text
        assert "Join as a guest" not in response.text
        assert "Accept and join" not in response.text
    assert list(Guest.objects.values_list("name", flat=True)) == ["Gus"]
    # Whoever came by the link before may still use it, under another name for a guest.
    again = first.get(link_path(token))
    assert USED_UP not in again.text
    assert 'name="name"' in again.text
    assert first.post(link_path(token), {"name": "Gustav"}).status_code == 302


def test_a_withdrawn_link_shows_only_the_explanation():
    host = UserFactory()
    room = RoomFactory(owner=host)
    invitation, token = services.invitation_create(room=room, created_by=host, allow_guests=True)
    services.invitation_revoke(invitation=invitation)

    response = Client().get(link_path(token))

    assert "This invitation was withdrawn." in response.text
    assert 'name="name"' not in response.text
    assert "<form" not in response.text.split('id="main"')[1]
