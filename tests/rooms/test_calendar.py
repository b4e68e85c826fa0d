import datetime as dt

import pytest
from dateutil import rrule
from django.core.exceptions import ValidationError
from django.test import RequestFactory
from icalendar import Calendar

from rooms import calendar, services
from rooms.recurrence import build_rule, local_datetime, occurrence_starts
from tests.factories import MeetingFactory, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db

SITE = "https://meet.example.org"


@pytest.fixture(autouse=True)
def site_url(settings):
    settings.SITE_URL = SITE


def parse(ics: bytes) -> Calendar:
    return Calendar.from_ical(ics)


def only_event(ics: bytes):
    events = parse(ics).walk("VEVENT")
    assert len(events) == 1
    return events[0]


def berlin_meeting(**fields):
    """A meeting at 09:00-10:00 Berlin time on Monday 18 March 2030, before summer time."""
    starts_at = local_datetime(dt.date(2030, 3, 18), dt.time(9), "Europe/Berlin")
    fields.setdefault("ends_at", starts_at + dt.timedelta(hours=1))
    return MeetingFactory(starts_at=starts_at, time_zone="Europe/Berlin", **fields)


def test_event_has_the_meeting_details_and_links_to_the_call():
    owner = UserFactory(display_name="Olga Organiser", email="olga@example.com")
    room = RoomFactory(owner=owner, name="Ops")
    meeting = berlin_meeting(room=room, title="Standup", description="Bring the numbers.")

    event = only_event(calendar.meeting_ics(meeting))

    call_url = SITE + room.get_call_url()
    assert str(event["uid"]) == f"{meeting.uid}@meet.example.org"
    assert str(event["summary"]) == "Standup"
    assert str(event["description"]) == f"Bring the numbers.\n\nJoin the call: {call_url}"
    assert str(event["url"]) == call_url
    assert str(event["location"]) == call_url
    assert str(event["organizer"]) == "mailto:olga@example.com"
    assert event["organizer"].params["CN"] == "Olga Organiser"
    assert event["sequence"] == 0
    assert str(event["status"]) == "CONFIRMED"
    assert "attendee" not in event
    assert event["dtstamp"].dt.utcoffset() == dt.timedelta(0)


def test_calendar_names_its_method_and_product():
    meeting = berlin_meeting()

    published = parse(calendar.meeting_ics(meeting))
    requested = parse(calendar.meeting_ics(meeting, method="REQUEST"))

    assert str(published["method"]) == "PUBLISH"
    assert str(published["version"]) == "2.0"
    assert str(published["prodid"]) == calendar.PRODID
    assert str(requested["method"]) == "REQUEST"


def test_urls_follow_the_request_but_the_uid_keeps_the_site_host():
    meeting = berlin_meeting()
    request = RequestFactory().get("/")

    event = only_event(calendar.meeting_ics(meeting, request=request))

    assert str(event["url"]) == "http://testserver" + meeting.room.get_call_url()
    assert str(event["uid"]) == f"{meeting.uid}@meet.example.org"


def test_uid_stays_and_sequence_rises_with_every_change():
    meeting = berlin_meeting(recurrence="FREQ=WEEKLY;COUNT=10")
    first = only_event(calendar.meeting_ics(meeting))
    second_start = list(occurrence_starts(meeting))[1]

    meeting = services.meeting_update(meeting=meeting, title="Standup (new time)")
    updated = only_event(calendar.meeting_ics(meeting))
    services.occurrence_cancel(meeting=meeting, starts_at=second_start)
    meeting.refresh_from_db()
    skipped = only_event(calendar.meeting_ics(meeting))
    meeting = services.meeting_cancel(meeting=meeting)
    cancelled = only_event(calendar.meeting_ics(meeting))

    events = [first, updated, skipped, cancelled]
    assert {str(event["uid"]) for event in events} == {f"{meeting.uid}@meet.example.org"}
    assert [event["sequence"] for event in events] == [0, 1, 2, 3]
    assert str(updated["summary"]) == "Standup (new time)"


def test_times_are_local_wall_clock_with_a_vtimezone_for_their_zone():
    meeting = berlin_meeting()

    ics = calendar.meeting_ics(meeting)
    event = only_event(ics)

    assert b"DTSTART;TZID=Europe/Berlin:20300318T090000\r\n" in ics
    assert b"DTEND;TZID=Europe/Berlin:20300318T100000\r\n" in ics
    assert event["dtstart"].params["TZID"] == "Europe/Berlin"
    assert event["dtend"].params["TZID"] == "Europe/Berlin"
    start = event["dtstart"].dt
    assert (start.date(), start.time(), start.tzinfo.key) == (
        dt.date(2030, 3, 18),
        dt.time(9),
        "Europe/Berlin",
    )
    assert event["dtstart"].dt == meeting.starts_at
    assert [zone.tz_name for zone in parse(ics).timezones] == ["Europe/Berlin"]


def test_vtimezone_knows_summer_time_for_occurrences_after_the_change():
    meeting = berlin_meeting(recurrence="FREQ=WEEKLY;COUNT=10")

    (vtimezone,) = parse(calendar.meeting_ics(meeting)).timezones
    zone = vtimezone.to_tz()

    assert dt.datetime(2030, 3, 18, 9, tzinfo=zone).utcoffset() == dt.timedelta(hours=1)
    assert dt.datetime(2030, 5, 20, 9, tzinfo=zone).utcoffset() == dt.timedelta(hours=2)


def test_utc_meeting_uses_utc_times_and_needs_no_vtimezone():
    starts_at = dt.datetime(2030, 3, 18, 9, tzinfo=dt.UTC)
    meeting = MeetingFactory(starts_at=starts_at, time_zone="UTC")

    ics = calendar.meeting_ics(meeting)

    assert b"DTSTART:20300318T090000Z\r\n" in ics
    assert parse(ics).timezones == []


def test_weekly_rule_with_a_count():
    meeting = berlin_meeting(recurrence=build_rule("weekly", count=10))

    ics = calendar.meeting_ics(meeting)

    assert b"\r\nRRULE:FREQ=WEEKLY;COUNT=10\r\n" in ics
    assert only_event(ics)["rrule"] == {"FREQ": ["WEEKLY"], "COUNT": [10]}


@pytest.mark.parametrize(
    ("time_zone", "until", "utc_until"),
    [
        # 23:59:59 in Berlin winter time (UTC+1) is 22:59:59 UTC the same day.
        ("Europe/Berlin", dt.date(2030, 12, 31), b"20301231T225959Z"),
        # 23:59:59 in New York summer time (UTC-4) is 03:59:59 UTC the next day.
        ("America/New_York", dt.date(2030, 7, 31), b"20300801T035959Z"),
    ],
)
def test_weekday_rule_until_is_given_in_utc(time_zone, until, utc_until):
    starts_at = local_datetime(dt.date(2030, 3, 18), dt.time(9), time_zone)
    meeting = MeetingFactory(
        starts_at=starts_at,
        time_zone=time_zone,
        recurrence=build_rule("weekdays", until=until),
    )

    ics = calendar.meeting_ics(meeting)

    assert b"\r\nRRULE:FREQ=WEEKLY;UNTIL=" + utc_until + b";BYDAY=MO,TU,WE,TH,FR\r\n" in ics


def test_exported_rule_gives_the_occurrences_the_site_expands():
    meeting = berlin_meeting(recurrence=build_rule("weekdays", until=dt.date(2030, 6, 28)))

    event = only_event(calendar.meeting_ics(meeting))
    exported = rrule.rrulestr(event["rrule"].to_ical().decode(), dtstart=event["dtstart"].dt)

    expected = list(occurrence_starts(meeting))
    assert [start.astimezone(dt.UTC) for start in exported] == expected
    assert expected[-1] == local_datetime(dt.date(2030, 6, 28), dt.time(9), "Europe/Berlin")


def test_cancelled_occurrences_are_exdates_in_local_time():
    meeting = berlin_meeting(recurrence="FREQ=WEEKLY;COUNT=10")
    starts = list(occurrence_starts(meeting))
    # The second is in winter time, the third in summer time: both are 09:00 in Berlin.
    services.occurrence_cancel(meeting=meeting, starts_at=starts[2])
    services.occurrence_cancel(meeting=meeting, starts_at=starts[1])
    meeting.refresh_from_db()

    ics = calendar.meeting_ics(meeting)
    event = only_event(ics)

    assert b"\r\nEXDATE;TZID=Europe/Berlin:20300325T090000,20300401T090000\r\n" in ics
    exdates = [exdate.dt for exdate in event["exdate"].dts]
    assert exdates == [starts[1], starts[2]]
    assert [(exdate.date(), exdate.time()) for exdate in exdates] == [
        (dt.date(2030, 3, 25), dt.time(9)),
        (dt.date(2030, 4, 1), dt.time(9)),
    ]


def test_meeting_without_cancelled_occurrences_has_no_exdate():
    event = only_event(calendar.meeting_ics(berlin_meeting(recurrence="FREQ=WEEKLY;COUNT=3")))

    assert "exdate" not in event


def test_cancelled_meeting_is_sent_as_a_cancellation():
    meeting = services.meeting_cancel(meeting=berlin_meeting())

    for method in ("PUBLISH", "REQUEST", "CANCEL"):
        ics = calendar.meeting_ics(meeting, method=method)
        assert str(parse(ics)["method"]) == "CANCEL"
        assert str(only_event(ics)["status"]) == "CANCELLED"


def test_cancel_method_marks_the_event_cancelled():
    ics = calendar.meeting_ics(berlin_meeting(), method="cancel")

    assert str(parse(ics)["method"]) == "CANCEL"
    assert str(only_event(ics)["status"]) == "CANCELLED"


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="REPLY"):
        calendar.meeting_ics(berlin_meeting(), method="REPLY")


def test_attendee_of_a_request_is_asked_to_answer():
    meeting = berlin_meeting()

    requested = only_event(
        calendar.meeting_ics(meeting, method="REQUEST", attendee_email="dana@example.com")
    )
    cancelled = only_event(
        calendar.meeting_ics(meeting, method="CANCEL", attendee_email="dana@example.com")
    )

    assert str(requested["attendee"]) == "mailto:dana@example.com"
    assert requested["attendee"].params["RSVP"] == "TRUE"
    assert requested["attendee"].params["PARTSTAT"] == "NEEDS-ACTION"
    assert str(cancelled["attendee"]) == "mailto:dana@example.com"
    assert "RSVP" not in cancelled["attendee"].params


@pytest.mark.parametrize(
    ("title", "summary"),
    [
        # iCalendar text has no carriage return: a line break of any kind becomes \n.
        (
            "Standup\r\nATTENDEE:mailto:evil@example.com",
            "Standup\nATTENDEE:mailto:evil@example.com",
        ),
        ("x\nBEGIN:VEVENT", "x\nBEGIN:VEVENT"),
        ("x\rEND:VEVENT\rBEGIN:VEVENT", "x\nEND:VEVENT\nBEGIN:VEVENT"),
        ("a;b,c\\d:e", "a;b,c\\d:e"),
        ("bell\x07and\x0bnull\x00", "bellandnull"),
    ],
)
def test_user_text_cannot_add_properties_or_components(title, summary):
    owner = UserFactory(display_name="Eve\r\nATTENDEE:mailto:evil@example.com")
    meeting = berlin_meeting(
        room=RoomFactory(owner=owner), title=title, description=f"{title}\nURL:https://evil"
    )

    ics = calendar.meeting_ics(meeting, method="REQUEST")
    event = only_event(ics)

    assert str(event["summary"]) == summary
    assert str(event["description"]).startswith(f"{summary}\nURL:https://evil\n\nJoin the call: ")
    assert event["organizer"].params["CN"] == "Eve ATTENDEE:mailto:evil@example.com"
    assert "attendee" not in event
    assert str(event["url"]) == SITE + meeting.room.get_call_url()
    lines = ics.decode().split("\r\n")
    assert lines.count("BEGIN:VEVENT") == 1
    assert not [line for line in lines if line.startswith(("ATTENDEE", "URL:https://evil"))]


def test_attendee_address_cannot_add_properties():
    with pytest.raises(ValidationError):
        calendar.meeting_ics(
            berlin_meeting(),
            method="REQUEST",
            attendee_email="dana@example.com\r\nATTENDEE:mailto:evil@example.com",
        )


def test_feed_lists_exactly_the_meetings_the_user_hosts_or_is_invited_to(user, other_user):
    own = berlin_meeting(room=RoomFactory(owner=user), title="Mine")
    cancelled = services.meeting_cancel(
        meeting=berlin_meeting(room=RoomFactory(owner=user), title="Called off")
    )
    bobs_room = RoomFactory(owner=other_user)
    invited = MeetingFactory(
        room=bobs_room,
        title="Bob's review",
        starts_at=dt.datetime(2030, 3, 18, 14, tzinfo=dt.UTC),
        time_zone="America/New_York",
    )
    services.invitation_create(room=bobs_room, created_by=other_user, meeting=invited, user=user)
    not_invited_same_room = MeetingFactory(room=bobs_room, title="Bob's other meeting")
    carols_room = RoomFactory(owner=UserFactory(username="carol"))
    services.invitation_create(
        room=carols_room, created_by=carols_room.owner, email=user.email.upper()
    )
    room_wide = MeetingFactory(room=carols_room, title="Carol's weekly")
    strangers = MeetingFactory(title="Strangers only")

    feed = parse(calendar.feed_ics(user))

    uids = {str(event["uid"]) for event in feed.walk("VEVENT")}
    assert uids == {calendar.event_uid(meeting) for meeting in (own, cancelled, invited, room_wide)}
    assert calendar.event_uid(not_invited_same_room) not in uids
    assert calendar.event_uid(strangers) not in uids
    assert str(feed["method"]) == "PUBLISH"
    assert str(feed["x-wr-calname"]) == "Meetings of Alice Liddell"
    statuses = {str(event["summary"]): str(event["status"]) for event in feed.walk("VEVENT")}
    assert statuses["Called off"] == "CANCELLED"
    assert statuses["Mine"] == "CONFIRMED"
    assert {zone.tz_name for zone in feed.timezones} == {"Europe/Berlin", "America/New_York"}
    assert not [event for event in feed.walk("VEVENT") if "attendee" in event]


def test_feed_of_a_user_with_no_meetings_is_an_empty_calendar(user):
    feed = parse(calendar.feed_ics(user))

    assert feed.walk("VEVENT") == []
    assert str(feed["method"]) == "PUBLISH"


def test_feed_token_finds_its_user_and_no_one_else(user, other_user):
    token = calendar.feed_token(user)

    assert calendar.feed_user(user.pk, token) == user
    assert calendar.feed_user(user.pk, "0" * len(token)) is None
    assert calendar.feed_user(user.pk, "") is None
    assert calendar.feed_user(user.pk, calendar.feed_token(other_user)) is None
    assert calendar.feed_user(other_user.pk, token) is None
    assert calendar.feed_user(other_user.pk + user.pk + 1000, token) is None
    assert user.calendar_feed_key not in token


def test_feed_token_of_an_inactive_user_finds_nobody(user):
    token = calendar.feed_token(user)
    user.is_active = False
    user.save(update_fields=["is_active"])

    assert calendar.feed_user(user.pk, token) is None


def test_regenerated_feed_token_retires_the_old_one(user):
    old = calendar.feed_token(user)

    new = calendar.feed_regenerate(user)

    assert new != old
    user.refresh_from_db()
    assert calendar.feed_token(user) == new
    assert calendar.feed_user(user.pk, new) == user
    assert calendar.feed_user(user.pk, old) is None


@pytest.mark.parametrize(
    ("title", "filename"),
    [
        ("Weekly: Q&A / Ops", "weekly-qa-ops.ics"),
        ('../../etc/passwd"; x', "etcpasswd-x.ics"),
        ("☕☕", "meeting.ics"),
    ],
)
def test_ics_filename_is_a_slug(title, filename):
    assert calendar.ics_filename(berlin_meeting(title=title)) == filename
