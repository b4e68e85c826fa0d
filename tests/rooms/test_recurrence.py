import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from rooms import services
from rooms.forms import MeetingForm
from rooms.recurrence import build_rule, describe_rule, local_datetime, occurrences
from tests.factories import MeetingFactory

BERLIN = "Europe/Berlin"


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def test_a_time_skipped_by_spring_forward_is_refused():
    with pytest.raises(ValidationError) as error:
        local_datetime(dt.date(2026, 3, 29), dt.time(2, 30), BERLIN)

    assert error.value.code == "nonexistent_time"
    assert "does not exist" in error.value.messages[0]


def test_a_time_repeated_by_fall_back_is_not_chosen_silently():
    with pytest.raises(ValidationError) as error:
        local_datetime(dt.date(2026, 10, 25), dt.time(2, 30), BERLIN)

    assert error.value.code == "ambiguous_time"
    assert "happens twice" in error.value.messages[0]


def test_an_ordinary_local_time_becomes_the_right_instant():
    assert local_datetime(dt.date(2026, 7, 1), dt.time(9), BERLIN) == utc(2026, 7, 1, 7)
    assert local_datetime(dt.date(2026, 1, 5), dt.time(9), BERLIN) == utc(2026, 1, 5, 8)


@pytest.mark.django_db
def test_a_weekly_berlin_meeting_stays_at_nine_local_across_both_dst_changes():
    meeting = MeetingFactory(
        starts_at=local_datetime(dt.date(2026, 3, 23), dt.time(9), BERLIN),
        ends_at=local_datetime(dt.date(2026, 3, 23), dt.time(10), BERLIN),
        time_zone=BERLIN,
        recurrence=build_rule("weekly", count=40),
    )

    starts = [o.starts_at for o in occurrences(meeting)]

    assert starts[0] == utc(2026, 3, 23, 8)  # CET, UTC+1
    assert starts[1] == utc(2026, 3, 30, 7)  # CEST, UTC+2, after 29 March
    assert utc(2026, 10, 19, 7) in starts  # last Monday of summer time
    assert utc(2026, 10, 26, 8) in starts  # CET again after 25 October
    assert {s.astimezone(ZoneInfo(BERLIN)).time() for s in starts} == {dt.time(9)}
    assert len(starts) == 40
    assert all(o.ends_at - o.starts_at == dt.timedelta(hours=1) for o in occurrences(meeting))


@pytest.mark.django_db
def test_weekdays_until_a_date_include_that_last_day():
    meeting = MeetingFactory(
        starts_at=local_datetime(dt.date(2026, 11, 30), dt.time(9), BERLIN),  # a Monday
        ends_at=local_datetime(dt.date(2026, 11, 30), dt.time(9, 15), BERLIN),
        time_zone=BERLIN,
        recurrence=build_rule("weekdays", until=dt.date(2026, 12, 8)),
    )

    days = [o.starts_at.date() for o in occurrences(meeting)]

    assert days == [
        dt.date(2026, 11, 30),
        dt.date(2026, 12, 1),
        dt.date(2026, 12, 2),
        dt.date(2026, 12, 3),
        dt.date(2026, 12, 4),
        dt.date(2026, 12, 7),
        dt.date(2026, 12, 8),
    ]


@pytest.mark.django_db
def test_a_cancelled_occurrence_is_left_out_and_the_rest_remain(django_capture_on_commit_callbacks):
    meeting = MeetingFactory(
        starts_at=utc(2026, 12, 1, 9),
        ends_at=utc(2026, 12, 1, 10),
        recurrence=build_rule("daily", count=3),
    )

    with django_capture_on_commit_callbacks(execute=False):
        services.occurrence_cancel(meeting=meeting, starts_at=utc(2026, 12, 2, 9))

    assert [o.starts_at for o in occurrences(meeting)] == [utc(2026, 12, 1, 9), utc(2026, 12, 3, 9)]
    with pytest.raises(ValidationError):
        services.occurrence_cancel(meeting=meeting, starts_at=utc(2026, 12, 2, 10))


def test_rules_round_trip_through_their_form_values():
    for frequency, until, count in [
        ("daily", None, 5),
        ("weekdays", dt.date(2027, 1, 31), None),
        ("monthly", None, None),
        ("weekly", None, 12),
    ]:
        rule = build_rule(frequency, until=until, count=count)
        assert describe_rule(rule) == {"frequency": frequency, "until": until, "count": count}
    assert build_rule("") == ""


MEETING_FORM = {
    "title": "Standup",
    "date": "2026-03-29",
    "start_time": "02:30",
    "end_time": "03:30",
    "time_zone": BERLIN,
    "repeat": "",
}


def test_the_meeting_form_puts_the_dst_gap_error_beside_the_start_time():
    form = MeetingForm(MEETING_FORM)

    assert not form.is_valid()
    assert "does not exist" in form.errors["start_time"][0]


def test_the_meeting_form_refuses_an_ambiguous_start():
    form = MeetingForm({**MEETING_FORM, "date": "2026-10-25"})

    assert not form.is_valid()
    assert "happens twice" in form.errors["start_time"][0]


def test_the_meeting_form_builds_the_rule_and_instants():
    form = MeetingForm(
        {
            **MEETING_FORM,
            "date": "2026-03-23",
            "start_time": "09:00",
            "end_time": "09:30",
            "repeat": "weekly",
            "repeat_count": "10",
        }
    )

    assert form.is_valid(), form.errors
    fields = form.meeting_fields()
    assert fields["starts_at"] == utc(2026, 3, 23, 8)
    assert fields["ends_at"] == utc(2026, 3, 23, 8, 30)
    assert fields["recurrence"] == "FREQ=WEEKLY;COUNT=10"


def test_the_meeting_form_refuses_both_an_end_date_and_a_count():
    form = MeetingForm(
        {
            **MEETING_FORM,
            "date": "2026-03-23",
            "start_time": "09:00",
            "repeat": "daily",
            "repeat_until": "2026-04-01",
            "repeat_count": "3",
        }
    )

    assert not form.is_valid()
    assert "either" in form.errors["repeat_count"][0]
