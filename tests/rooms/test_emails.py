import datetime as dt
import logging
import smtplib

import pytest
from django.core import mail
from django.core.mail.backends import locmem
from django.core.mail.backends.base import BaseEmailBackend
from django.urls import reverse
from icalendar import Calendar

from rooms import services
from rooms.recurrence import local_datetime, occurrence_starts
from tests.factories import MeetingFactory, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db

SITE = "https://meet.example.org"


@pytest.fixture(autouse=True)
def site_url(settings):
    settings.SITE_URL = SITE


@pytest.fixture
def owner():
    return UserFactory(username="olga", display_name="Olga Organiser")


@pytest.fixture
def room(owner):
    return RoomFactory(owner=owner, name="Ops room")


@pytest.fixture
def meeting(room, owner):
    """A weekly meeting at 09:00-10:00 Berlin time from Monday 18 March 2030."""
    starts_at = local_datetime(dt.date(2030, 3, 18), dt.time(9), "Europe/Berlin")
    return MeetingFactory(
        room=room,
        title="Standup",
        starts_at=starts_at,
        ends_at=starts_at + dt.timedelta(hours=1),
        time_zone="Europe/Berlin",
        recurrence="FREQ=WEEKLY;COUNT=10",
        created_by=owner,
    )


def calendar_part(message):
    """Return the text/calendar part of a message as it goes on the wire."""
    parts = [
        part for part in message.message().walk() if part.get_content_type() == "text/calendar"
    ]
    assert len(parts) == 1
    return parts[0]


def attached_calendar(message) -> Calendar:
    return Calendar.from_ical(calendar_part(message).get_payload(decode=True))


def html_body(message) -> str:
    (html, mimetype), *_ = message.alternatives
    assert mimetype == "text/html"
    return html


def invite(room, owner, **fields):
    return services.invitation_create(room=room, created_by=owner, **fields)


def test_invitation_to_a_meeting_sends_the_link_and_the_event(
    room, owner, meeting, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invitation, token = invite(room, owner, meeting=meeting, email="dana@example.com")

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    link = SITE + reverse("rooms:invitation", kwargs={"token": token})
    assert message.to == ["dana@example.com"]
    assert message.subject == "Invitation: Standup"
    assert "Olga Organiser invites you to a meeting in Ops room." in message.body
    assert link in message.body
    assert f'href="{link}"' in html_body(message)
    assert "Monday 18 March 2030, 09:00–10:00 (Europe/Berlin)" in message.body
    assert "Repeats: every week, 10 times" in message.body
    part = calendar_part(message)
    assert part.get_param("method") == "REQUEST"
    assert part.get_content_charset() == "utf-8"
    assert part.get_filename() == "invite.ics"
    ics = attached_calendar(message)
    (event,) = ics.walk("VEVENT")
    assert str(ics["method"]) == "REQUEST"
    assert str(event["uid"]) == f"{meeting.uid}@meet.example.org"
    assert str(event["attendee"]) == "mailto:dana@example.com"
    assert event["attendee"].params["RSVP"] == "TRUE"


def test_invitation_to_a_user_shows_times_in_their_time_zone(
    room, owner, meeting, django_capture_on_commit_callbacks
):
    erin = UserFactory(username="erin", time_zone="America/New_York")

    with django_capture_on_commit_callbacks(execute=True):
        invite(room, owner, meeting=meeting, user=erin)

    (message,) = mail.outbox
    assert message.to == ["erin@example.com"]
    # 09:00 in Berlin (UTC+1) is 04:00 in New York, on summer time (UTC-4) since 10 March.
    assert "Monday 18 March 2030, 04:00–05:00 (America/New_York)" in message.body
    assert "Monday 18 March 2030, 04:00–05:00 (America/New_York)" in html_body(message)


def test_invitation_to_a_room_has_no_event(room, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invitation, token = invite(room, owner, email="dana@example.com")

    (message,) = mail.outbox
    assert message.subject == "Invitation: Ops room"
    assert "Olga Organiser invites you to the room Ops room." in message.body
    assert SITE + reverse("rooms:invitation", kwargs={"token": token}) in message.body
    assert not [
        part for part in message.message().walk() if part.get_content_type() == "text/calendar"
    ]


def test_invitation_without_an_address_sends_nothing(
    room, owner, meeting, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invite(room, owner, meeting=meeting, allow_guests=True)

    assert mail.outbox == []


def test_user_text_is_escaped_in_html_and_verbatim_in_plain_text(
    owner, django_capture_on_commit_callbacks
):
    owner.display_name = "<b>Olga</b> & co"
    owner.save(update_fields=["display_name"])
    room = RoomFactory(owner=owner, name="R&D <script>")
    meeting = MeetingFactory(room=room, title="Q&A <img src=x onerror=alert(1)>")

    with django_capture_on_commit_callbacks(execute=True):
        invite(room, owner, meeting=meeting, email="dana@example.com")

    (message,) = mail.outbox
    html = html_body(message)
    assert "<img" not in html
    assert "<script>" not in html
    assert "<b>Olga" not in html
    assert "Q&amp;A &lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;b&gt;Olga&lt;/b&gt; &amp; co invites you to a meeting in R&amp;D" in html
    # Plain text is never read as HTML: it shows the text as it was typed.
    assert "<b>Olga</b> & co invites you to a meeting in R&D <script>." in message.body
    assert "Q&A <img src=x onerror=alert(1)>" in message.body
    assert message.subject == "Invitation: Q&A <img src=x onerror=alert(1)>"


def test_title_with_a_line_break_cannot_add_headers(
    room, owner, django_capture_on_commit_callbacks
):
    meeting = MeetingFactory(room=room, title="Standup\r\nBcc: evil@example.com")

    with django_capture_on_commit_callbacks(execute=True):
        invite(room, owner, meeting=meeting, email="dana@example.com")

    (message,) = mail.outbox
    assert message.subject == "Invitation: Standup Bcc: evil@example.com"
    assert message.message()["Bcc"] is None
    assert message.recipients() == ["dana@example.com"]


@pytest.fixture
def invitees(room, owner, meeting, django_capture_on_commit_callbacks):
    """
    Dana invited to the meeting and to the room (one address, twice), Erin to the room as a user,
    Frank to the meeting but revoked, and an open link; none of their invitations sent here.
    """
    erin = UserFactory(username="erin", time_zone="America/New_York")
    invite(room, owner, meeting=meeting, email="dana@example.com")
    invite(room, owner, email="Dana@Example.com")
    invite(room, owner, user=erin)
    frank, _ = invite(room, owner, meeting=meeting, email="frank@example.com")
    services.invitation_revoke(invitation=frank)
    invite(room, owner, meeting=meeting, allow_guests=True)
    invite(room, owner, meeting=MeetingFactory(room=room), email="gus@example.com")
    invite(RoomFactory(), owner, email="hal@example.com")
    mail.outbox.clear()


@pytest.mark.usefixtures("invitees")
def test_meeting_update_sends_each_invitee_the_new_event_once(
    meeting, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.meeting_update(meeting=meeting, title="Standup, later")

    by_recipient = {tuple(message.to): message for message in mail.outbox}
    assert len(mail.outbox) == 2
    assert set(by_recipient) == {("dana@example.com",), ("erin@example.com",)}
    for (address,), message in by_recipient.items():
        assert message.subject == "Updated: Standup, later"
        assert calendar_part(message).get_param("method") == "REQUEST"
        ics = attached_calendar(message)
        (event,) = ics.walk("VEVENT")
        assert str(ics["method"]) == "REQUEST"
        assert event["sequence"] == 1
        assert str(event["summary"]) == "Standup, later"
        assert str(event["uid"]) == f"{meeting.uid}@meet.example.org"
        assert str(event["attendee"]).lower() == f"mailto:{address}"
    assert "(America/New_York)" in by_recipient[("erin@example.com",)].body
    assert "(Europe/Berlin)" in by_recipient[("dana@example.com",)].body


@pytest.mark.usefixtures("invitees")
def test_occurrence_cancel_sends_the_event_with_its_exdate(
    meeting, django_capture_on_commit_callbacks
):
    second = list(occurrence_starts(meeting))[1]

    with django_capture_on_commit_callbacks(execute=True):
        services.occurrence_cancel(meeting=meeting, starts_at=second)

    assert sorted(message.to[0] for message in mail.outbox) == [
        "dana@example.com",
        "erin@example.com",
    ]
    for message in mail.outbox:
        (event,) = attached_calendar(message).walk("VEVENT")
        assert event["sequence"] == 1
        assert [exdate.dt for exdate in event["exdate"].dts] == [second]
    (dana,) = [message for message in mail.outbox if message.to == ["dana@example.com"]]
    assert "These occurrences will not take place:\n- Monday 25 March 2030, 09:00" in dana.body


@pytest.mark.usefixtures("invitees")
def test_meeting_cancel_sends_a_cancellation(meeting, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.meeting_cancel(meeting=meeting)

    assert sorted(message.to[0] for message in mail.outbox) == [
        "dana@example.com",
        "erin@example.com",
    ]
    for message in mail.outbox:
        assert message.subject == "Cancelled: Standup"
        assert "has been cancelled" in message.body
        assert calendar_part(message).get_param("method") == "CANCEL"
        ics = attached_calendar(message)
        (event,) = ics.walk("VEVENT")
        assert str(ics["method"]) == "CANCEL"
        assert str(event["status"]) == "CANCELLED"
        assert event["sequence"] == 1


def test_meeting_without_invitees_sends_nothing(meeting, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.meeting_update(meeting=meeting, title="Just me")
        services.meeting_cancel(meeting=meeting)

    assert mail.outbox == []


class RefusingBackend(locmem.EmailBackend):
    """Deliver to the test outbox, but refuse one address as a mail server would."""

    def send_messages(self, messages):
        for message in messages:
            if "refused@example.com" in message.to:
                raise smtplib.SMTPRecipientsRefused({"refused@example.com": (550, b"No such user")})
        return super().send_messages(messages)


class UnreachableBackend(BaseEmailBackend):
    def open(self):
        raise ConnectionRefusedError("nothing listens on the mail port")

    def send_messages(self, messages):
        raise AssertionError("sent without a connection")


def test_refused_address_is_logged_and_the_others_still_get_theirs(
    room, owner, meeting, settings, caplog, django_capture_on_commit_callbacks
):
    invite(room, owner, meeting=meeting, email="refused@example.com")
    invite(room, owner, meeting=meeting, email="dana@example.com")
    settings.EMAIL_BACKEND = f"{__name__}.RefusingBackend"

    with (
        caplog.at_level(logging.ERROR, logger="rooms.emails"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.meeting_update(meeting=meeting, title="Standup, later")

    assert [message.to for message in mail.outbox] == [["dana@example.com"]]
    assert "Could not send a meeting email to refused@example.com" in caplog.text


def test_unreachable_mail_server_is_logged_not_raised(
    room, owner, meeting, settings, caplog, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = f"{__name__}.UnreachableBackend"

    with (
        caplog.at_level(logging.ERROR, logger="rooms.emails"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        invitation, _ = invite(room, owner, meeting=meeting, email="dana@example.com")

    assert invitation.pk is not None
    assert "Could not reach the mail server for 1 meeting email(s)" in caplog.text
