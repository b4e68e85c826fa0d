import datetime as dt
import json
import re
import zoneinfo

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from icalendar import Calendar

from rooms import services
from rooms.models import Guest, Invitation, Meeting, Room
from tests.factories import MeetingFactory, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def error_beside(html: str, field: str) -> str:
    match = re.search(rf'id="id_{field}_error">(.*?)</ul>', html, re.S)
    assert match, f"no error beside {field}"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def test_a_host_creates_a_room_schedules_a_recurring_meeting_and_invites_people(
    django_capture_on_commit_callbacks,
):
    """The issue's walk-through: two accounts in two time zones and a guest."""
    host = UserFactory(username="hana", time_zone="Europe/Berlin")
    invitee = UserFactory(username="ian", email="ian@example.com", time_zone="America/New_York")
    host_client, invitee_client = signed_in(host), signed_in(invitee)

    response = host_client.post(
        reverse("rooms:create"),
        {
            "name": "Weekly sync",
            "access": "invited",
            "max_participants": 6,
            "opens_minutes_before": 10,
        },
    )
    room = Room.objects.get(name="Weekly sync")
    assert response.url == room.get_absolute_url()
    assert room.owner == host

    first_day = timezone.localdate() + dt.timedelta(days=2)
    response = host_client.post(
        reverse("rooms:meeting_create", args=[room.slug]),
        {
            "title": "Sync",
            "date": first_day.isoformat(),
            "start_time": "09:00",
            "end_time": "09:30",
            "time_zone": "Europe/Berlin",
            "repeat": "weekly",
            "repeat_count": "8",
        },
    )
    meeting = Meeting.objects.get(room=room)
    assert response.url == meeting.get_absolute_url()
    assert meeting.recurrence == "FREQ=WEEKLY;COUNT=8"

    with django_capture_on_commit_callbacks(execute=True):
        host_client.post(
            reverse("rooms:invitations", args=[room.slug]),
            {
                "email-emails": "ian@example.com",
                "email-meeting": meeting.pk,
                "email-role": "participant",
            },
        )
    assert mail.outbox[0].to == ["ian@example.com"]
    invitation = Invitation.objects.get(room=room, email="ian@example.com")
    assert invitation.user == invitee

    response = host_client.post(
        reverse("rooms:invitations", args=[room.slug]),
        {"link-role": "participant", "link-allow_guests": "on", "link-max_uses": "5"},
    )
    guest_link = re.search(r'value="(http://testserver/i/[^"]+)"', response.text).group(1)

    berlin_start = dt.datetime.combine(first_day, dt.time(9), zoneinfo.ZoneInfo("Europe/Berlin"))
    new_york_start = berlin_start.astimezone(zoneinfo.ZoneInfo("America/New_York"))
    host_dashboard = host_client.get(reverse("rooms:dashboard")).text
    invitee_dashboard = invitee_client.get(reverse("rooms:dashboard")).text
    assert f"{berlin_start:%a} {berlin_start.day} {berlin_start:%b %Y}, 09:00" in host_dashboard
    assert (
        f"{new_york_start:%a} {new_york_start.day} {new_york_start:%b %Y}, "
        f"{new_york_start:%H:%M}" in invitee_dashboard
    )
    assert "Sync" in invitee_dashboard

    ics = invitee_client.get(reverse("rooms:meeting_ics", args=[room.slug, meeting.pk]))
    assert ics["Content-Type"].startswith("text/calendar")
    event = Calendar.from_ical(ics.content).walk("VEVENT")[0]
    assert str(event["SUMMARY"]) == "Sync"

    feed_url = re.search(
        r'id="feed-url"[^>]*value="http://testserver([^"]+)"',
        invitee_client.get(reverse("rooms:calendar")).text,
    ).group(1)
    feed = Client().get(feed_url)
    assert [str(e["SUMMARY"]) for e in Calendar.from_ical(feed.content).walk("VEVENT")] == ["Sync"]

    guest = Client()
    path = guest_link.removeprefix("http://testserver")
    assert "Your name" in guest.get(path).text
    response = guest.post(path, {"name": "Gus"})
    assert response.url == room.get_call_url()
    assert Guest.objects.get(invitation__room=room).name == "Gus"
    call = guest.get(room.get_call_url())
    assert call.status_code == 200
    assert "opens at" in call.text or "You join as Gus" in call.text


def test_the_join_button_is_live_only_inside_the_join_window(alice_client, user):
    room = RoomFactory(owner=user, opens_minutes_before=10)
    now = timezone.now()
    MeetingFactory(room=room, title="Soon", starts_at=now + dt.timedelta(minutes=5))
    MeetingFactory(room=room, title="Later", starts_at=now + dt.timedelta(hours=3))

    html = alice_client.get(reverse("rooms:dashboard")).text

    soon, later = html.split("Soon")[1].split("Later")
    assert f'href="{room.get_call_url()}">Join</a>' in soon
    assert 'aria-disabled="true"' in later
    assert "data-opens-at" in later


def test_a_bad_meeting_form_shows_the_error_beside_the_field(alice_client, user):
    room = RoomFactory(owner=user)

    response = alice_client.post(
        reverse("rooms:meeting_create", args=[room.slug]),
        {
            "title": "Night",
            "date": "2026-03-29",
            "start_time": "02:30",
            "end_time": "03:30",
            "time_zone": "Europe/Berlin",
        },
    )

    assert response.status_code == 200
    assert "does not exist" in error_beside(response.text, "start_time")
    assert not Meeting.objects.exists()


def test_a_bad_invitation_address_is_refused_beside_the_field(alice_client, user):
    room = RoomFactory(owner=user)

    response = alice_client.post(
        reverse("rooms:invitations", args=[room.slug]),
        {"email-emails": "ok@example.com, not-an-address", "email-role": "participant"},
    )

    assert "not-an-address is not an email address" in error_beside(response.text, "email-emails")
    assert not Invitation.objects.exists()


def test_only_hosts_manage_a_room(user):
    room = RoomFactory(owner=user)
    stranger = signed_in(UserFactory())

    assert stranger.get(reverse("rooms:edit", args=[room.slug])).status_code == 403
    assert stranger.get(reverse("rooms:invitations", args=[room.slug])).status_code == 403
    assert stranger.get(reverse("rooms:detail", args=[room.slug])).status_code == 404
    assert stranger.post(reverse("rooms:delete", args=[room.slug])).status_code == 403
    assert Room.objects.filter(pk=room.pk).exists()


def test_a_co_host_can_schedule_but_not_delete(user):
    room = RoomFactory(owner=user)
    co_host = UserFactory()
    services.co_host_add(room=room, user=co_host)
    client = signed_in(co_host)

    assert client.get(reverse("rooms:meeting_create", args=[room.slug])).status_code == 200
    assert client.post(reverse("rooms:delete", args=[room.slug])).status_code == 403


def test_an_addressed_invitee_answers_and_the_host_sees_it(user, other_user):
    room = RoomFactory(owner=user)
    invitation, token = services.invitation_create(
        room=room, created_by=user, email=other_user.email
    )
    client = signed_in(other_user)

    client.post(reverse("rooms:invitation", args=[token]), {"rsvp": "accepted"})

    invitation.refresh_from_db()
    assert invitation.rsvp == "accepted"
    html = signed_in(user).get(reverse("rooms:invitations", args=[room.slug])).text
    assert "Accepted" in html


def test_a_withdrawn_link_cannot_let_a_guest_in(user):
    room = RoomFactory(owner=user)
    invitation, token = services.invitation_create(room=room, created_by=user, allow_guests=True)
    signed_in(user).post(reverse("rooms:invitation_revoke", args=[room.slug, invitation.pk]))

    response = Client().post(reverse("rooms:invitation", args=[token]), {"name": "Gus"})

    assert "withdrawn" in response.text
    assert not Guest.objects.exists()


def test_an_unknown_invitation_link_is_a_clear_404():
    response = Client().get(reverse("rooms:invitation", args=["nope"]))

    assert response.status_code == 404
    assert "not valid" in response.text


def test_a_guest_sees_only_the_name_form_and_the_call(user):
    room = RoomFactory(owner=user)
    _, token = services.invitation_create(room=room, created_by=user, allow_guests=True)
    guest = Client()
    guest.post(reverse("rooms:invitation", args=[token]), {"name": "Gus"})

    assert guest.get(room.get_call_url()).status_code == 200
    for page in [
        reverse("rooms:dashboard"),
        reverse("rooms:detail", args=[room.slug]),
        reverse("rooms:list"),
    ]:
        response = guest.get(page)
        assert response.status_code == 302
        assert response.url.startswith(reverse("account_login"))


def test_the_calendar_shows_a_week_and_a_month(alice_client, user):
    room = RoomFactory(owner=user)
    MeetingFactory(room=room, title="Planning", starts_at=timezone.now() + dt.timedelta(hours=2))

    week = alice_client.get(reverse("rooms:calendar"))
    month = alice_client.get(reverse("rooms:calendar") + "?view=month")

    assert week.status_code == month.status_code == 200
    assert "Planning" in week.text
    assert "Planning" in month.text
    assert month.text.count('<td class="') >= 28


def test_the_feed_needs_the_right_token(user):
    response = Client().get(reverse("rooms:feed", args=[user.pk, "0" * 64]))

    assert response.status_code == 404


def test_deleting_a_room_cancels_its_meetings(
    alice_client, user, django_capture_on_commit_callbacks
):
    room = RoomFactory(owner=user)
    meeting = MeetingFactory(room=room)

    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(reverse("rooms:delete", args=[room.slug]))

    assert not Room.objects.filter(pk=room.pk).exists()
    assert not Meeting.objects.filter(pk=meeting.pk).exists()


def test_the_meeting_page_lists_occurrences_and_a_host_cancels_one(
    alice_client, user, django_capture_on_commit_callbacks
):
    room = RoomFactory(owner=user)
    first = (timezone.now() + dt.timedelta(days=1)).replace(microsecond=0)
    meeting = MeetingFactory(
        room=room, title="Daily", starts_at=first, recurrence="FREQ=DAILY;COUNT=3"
    )
    second = first + dt.timedelta(days=1)

    page = alice_client.get(meeting.get_absolute_url())
    assert page.status_code == 200
    assert page.text.count('class="occurrence"') == 3

    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(
            reverse("rooms:occurrence_cancel", args=[room.slug, meeting.pk]),
            {"starts_at": second.isoformat()},
        )

    page = alice_client.get(meeting.get_absolute_url())
    assert page.text.count('class="occurrence"') == 2
    assert meeting.cancellations.get().starts_at == second


def test_a_guest_can_change_their_name_before_joining(user):
    room = RoomFactory(owner=user)
    _, token = services.invitation_create(room=room, created_by=user, allow_guests=True)
    guest = Client()
    guest.post(reverse("rooms:invitation", args=[token]), {"name": "Gus"})

    page = guest.get(room.get_call_url())
    assert 'value="Gus"' in page.text
    refused = guest.post(room.get_call_url(), {"name": "   "})
    assert error_beside(refused.text, "name") == "This field is required."
    assert Guest.objects.get().name == "Gus"
    guest.post(room.get_call_url(), {"name": "Gus G."})

    assert Guest.objects.get().name == "Gus G."
    assert "You join as <strong>Gus G.</strong>" in guest.get(room.get_call_url()).text


def test_a_signed_in_user_cannot_rename_a_guest_through_the_call_page(alice_client, user):
    room = RoomFactory(owner=user)

    response = alice_client.post(room.get_call_url(), {"name": "Someone else"})

    assert response.status_code == 200
    assert "guest-name-form" not in response.text


def call_config(page) -> dict:
    match = re.search(r'<script id="call-config" type="application/json">(.*?)</script>', page.text)
    assert match, "no call-config on the page"
    return json.loads(match.group(1))


def test_only_who_may_see_the_people_in_a_call_is_told_to_ask(user):
    """A guest waiting in the lobby would get a refusal every 5 s: their page does not ask."""
    room = RoomFactory(owner=user, lobby_enabled=True)
    _, token = services.invitation_create(room=room, created_by=user, allow_guests=True)
    guest = Client()
    guest.post(reverse("rooms:invitation", args=[token]), {"name": "Gus"})
    host = signed_in(user)
    people_url = reverse("rooms:call_people", args=[room.slug])

    host_config = call_config(host.get(room.get_call_url()))
    guest_config = call_config(guest.get(room.get_call_url()))

    assert host_config["mayListPeople"] is True
    assert host.get(people_url).status_code == 200
    assert guest_config["mayListPeople"] is False
    assert guest.get(people_url).status_code == 403
    assert guest_config["peopleUrl"] == people_url
