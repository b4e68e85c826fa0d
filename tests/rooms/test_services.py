import datetime as dt

import pytest
from django.core import mail
from django.utils import timezone
from icalendar import Calendar

from rooms import services
from rooms.forms import MeetingForm
from tests.factories import MeetingFactory, RoomFactory

pytestmark = pytest.mark.django_db


def calendar_method(message) -> str:
    ics = next(a for a in message.attachments if a[0] == "invite.ics")[1]
    return str(Calendar.from_ical(ics)["METHOD"])


def test_deleting_a_room_tells_its_invitees_their_meetings_are_cancelled(
    django_capture_on_commit_callbacks,
):
    room = RoomFactory()
    meeting = MeetingFactory(room=room, title="Retro")
    services.invitation_create(room=room, created_by=room.owner, email="ann@example.com")
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        services.room_delete(room=room)

    assert [m.to for m in mail.outbox] == [["ann@example.com"]]
    assert mail.outbox[0].subject == f"Cancelled: {meeting.title}"
    assert calendar_method(mail.outbox[0]) == "CANCEL"


def test_withdrawing_an_invitation_takes_the_event_off_that_persons_calendar(
    django_capture_on_commit_callbacks,
):
    meeting = MeetingFactory(title="Review")
    invitation, _ = services.invitation_create(
        room=meeting.room, created_by=meeting.room.owner, meeting=meeting, email="bo@example.com"
    )
    services.invitation_create(
        room=meeting.room, created_by=meeting.room.owner, meeting=meeting, email="cy@example.com"
    )
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        services.invitation_revoke(invitation=invitation)

    assert [m.to for m in mail.outbox] == [["bo@example.com"]]
    assert calendar_method(mail.outbox[0]) == "CANCEL"


def test_moving_a_meeting_drops_cancellations_of_the_old_times(django_capture_on_commit_callbacks):
    start = (timezone.now() + dt.timedelta(days=1)).replace(microsecond=0)
    meeting = MeetingFactory(starts_at=start, recurrence="FREQ=DAILY;COUNT=3")
    services.occurrence_cancel(meeting=meeting, starts_at=start + dt.timedelta(days=1))

    services.meeting_update(
        meeting=meeting,
        starts_at=start + dt.timedelta(hours=2),
        ends_at=start + dt.timedelta(hours=3),
    )

    assert not meeting.cancellations.exists()


def test_a_cancelled_meeting_has_no_occurrences_left_to_cancel():
    meeting = MeetingFactory(recurrence="FREQ=DAILY;COUNT=3")
    services.meeting_cancel(meeting=meeting)

    with pytest.raises(services.ValidationError):
        services.occurrence_cancel(meeting=meeting, starts_at=meeting.starts_at)


def test_a_repeating_meeting_must_say_when_it_ends():
    form = MeetingForm(
        {
            "title": "Sync",
            "date": "2027-01-04",
            "start_time": "09:00",
            "end_time": "09:30",
            "time_zone": "UTC",
            "repeat": "weekly",
        }
    )

    assert not form.is_valid()
    assert "ends" in form.errors["repeat_until"][0]


def test_the_owner_cannot_be_made_a_co_host_or_banned():
    room = RoomFactory()

    with pytest.raises(services.ValidationError):
        services.co_host_add(room=room, user=room.owner)
    with pytest.raises(services.ValidationError):
        services.ban_create(room=room, user=room.owner)
    assert not room.co_hosts.exists()
    assert not room.bans.exists()
