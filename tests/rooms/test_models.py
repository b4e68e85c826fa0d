import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F

from rooms.models import Attendance, Ban, Invitation, Meeting, Room
from tests.factories import MeetingFactory, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db

NOON = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)


def refused_by_database(write) -> bool:
    try:
        with transaction.atomic():
            write()
    except IntegrityError:
        return True
    return False


def test_the_database_refuses_a_meeting_that_ends_before_it_starts():
    room = RoomFactory()

    assert refused_by_database(
        lambda: Meeting.objects.create(
            room=room,
            title="Backwards",
            starts_at=NOON,
            ends_at=NOON - dt.timedelta(hours=1),
            time_zone="UTC",
        )
    )
    assert refused_by_database(
        lambda: Meeting.objects.create(
            room=room, title="Empty", starts_at=NOON, ends_at=NOON, time_zone="UTC"
        )
    )


def test_the_database_refuses_an_edit_that_moves_the_end_before_the_start():
    meeting = MeetingFactory(starts_at=NOON)

    assert refused_by_database(
        lambda: Meeting.objects.filter(pk=meeting.pk).update(ends_at=F("starts_at"))
    )


@pytest.mark.parametrize("limit", [0, 1, 51, 100])
def test_the_database_keeps_room_sizes_between_2_and_50(limit):
    owner = UserFactory()

    assert refused_by_database(
        lambda: Room.objects.create(
            owner=owner, name="R", slug=f"r-{limit}", max_participants=limit
        )
    )


def test_the_database_refuses_more_uses_than_an_invitation_allows():
    room = RoomFactory()
    invitation = Invitation.objects.create(room=room, token_hash="a" * 64, max_uses=1, use_count=1)

    assert refused_by_database(
        lambda: Invitation.objects.filter(pk=invitation.pk).update(use_count=F("use_count") + 1)
    )


def test_the_database_refuses_a_second_room_with_the_same_address():
    room = RoomFactory()

    assert refused_by_database(
        lambda: Room.objects.create(owner=room.owner, name="Copy", slug=room.slug)
    )


def test_a_ban_names_exactly_one_person():
    room = RoomFactory()

    assert refused_by_database(lambda: Ban.objects.create(room=room))
    assert (
        refused_by_database(lambda: Ban.objects.create(room=room, user=UserFactory(), guest=None))
        is False
    )


def test_attendance_cannot_end_before_it_began():
    room = RoomFactory()

    assert refused_by_database(
        lambda: Attendance.objects.create(
            room=room,
            name="X",
            role="participant",
            joined_at=NOON,
            left_at=NOON - dt.timedelta(seconds=1),
        )
    )


def test_a_room_past_12_people_needs_the_media_server(settings):
    owner = UserFactory()
    room = Room(owner=owner, name="All hands", slug="all-hands", max_participants=25)

    settings.JANUS_URLS = []
    with pytest.raises(ValidationError):
        room.full_clean()
    settings.JANUS_URLS = ["ws://10.0.0.5:8188"]
    room.full_clean()
    assert room.participant_limit() == 25
    room.media = Room.Media.MESH
    with pytest.raises(ValidationError):
        room.full_clean()
