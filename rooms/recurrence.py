"""
Meeting times and recurrence.

A recurring meeting repeats at the same wall-clock time in its own time zone, so a weekly 09:00
Europe/Berlin meeting stays at 09:00 local across daylight-saving changes. Rules are stored as
RFC 5545 RRULE text and expanded with python-dateutil on naive local times, each of which is
then placed in the time zone.
"""

import datetime as dt
import zoneinfo
from dataclasses import dataclass

from dateutil import rrule
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

# The frequencies a person can pick, as RRULE parts.
FREQUENCIES = {
    "daily": "FREQ=DAILY",
    "weekdays": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
    "weekly": "FREQ=WEEKLY",
    "monthly": "FREQ=MONTHLY",
}
MAX_COUNT = 500
# Expansion stops here, well past five years of a daily meeting, whatever the stored rule says.
MAX_EXPANDED = 2000


@dataclass(frozen=True)
class Occurrence:
    """One sitting of a meeting, in UTC, with the start it has in the meeting's rule."""

    meeting: object
    starts_at: dt.datetime
    ends_at: dt.datetime

    @property
    def key(self) -> str:
        return f"{self.meeting.pk}:{self.starts_at:%Y%m%dT%H%M%SZ}"


def local_datetime(date: dt.date, time: dt.time, time_zone: str) -> dt.datetime:
    """
    Return the aware instant of a wall-clock time in a time zone.

    Raise ValidationError for a time that does not exist there (skipped by a spring-forward
    change) and for one that happens twice (repeated by a fall-back change): choosing either
    silently would put the meeting an hour away from what someone meant.
    """
    zone = zoneinfo.ZoneInfo(time_zone)
    naive = dt.datetime.combine(date, time)
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() != second.utcoffset():
        round_trip = first.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None)
        if round_trip != naive:
            raise ValidationError(
                _("%(time)s does not exist on %(date)s in %(zone)s: the clocks skip it."),
                code="nonexistent_time",
                params={
                    "time": time.strftime("%H:%M"),
                    "date": date.isoformat(),
                    "zone": time_zone,
                },
            )
        raise ValidationError(
            _(
                "%(time)s happens twice on %(date)s in %(zone)s because the clocks go back; "
                "pick another time."
            ),
            code="ambiguous_time",
            params={"time": time.strftime("%H:%M"), "date": date.isoformat(), "zone": time_zone},
        )
    return first


def build_rule(frequency: str, *, until: dt.date | None = None, count: int | None = None) -> str:
    """Return the RRULE text for a frequency ending on a date (inclusive) or after a count."""
    if not frequency:
        return ""
    parts = [FREQUENCIES[frequency]]
    if count is not None:
        parts.append(f"COUNT={count}")
    elif until is not None:
        # Rules expand on local wall-clock times, so UNTIL is the end of that local day; the
        # calendar export turns it into UTC, as RFC 5545 asks when DTSTART has a TZID.
        parts.append(f"UNTIL={until:%Y%m%d}T235959")
    return ";".join(parts)


def describe_rule(rule_text: str) -> dict:
    """Return the form values (frequency, until, count) a rule was built from."""
    if not rule_text:
        return {"frequency": "", "until": None, "count": None}
    parts = dict(part.split("=", 1) for part in rule_text.split(";"))
    frequency = next(
        (
            name
            for name, text in FREQUENCIES.items()
            if rule_text.startswith(text + ";") or rule_text == text
        ),
        "",
    )
    until = None
    if "UNTIL" in parts:
        text = parts["UNTIL"]
        until = dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    count = int(parts["COUNT"]) if "COUNT" in parts else None
    return {"frequency": frequency, "until": until, "count": count}


def occurrence_starts(
    meeting, *, after: dt.datetime | None = None, before: dt.datetime | None = None
):
    """
    Yield the UTC starts of a meeting's occurrences, cancelled ones included, in order.

    `after` keeps the occurrences still running at that instant; `before` stops at the
    occurrences starting before it.
    """
    zone = zoneinfo.ZoneInfo(meeting.time_zone)
    duration = meeting.ends_at - meeting.starts_at
    first_local = meeting.starts_at.astimezone(zone).replace(tzinfo=None)
    if not meeting.recurrence:
        candidates = [first_local]
    else:
        candidates = rrule.rrulestr(meeting.recurrence, dtstart=first_local, cache=False)
    for index, local in enumerate(candidates):
        if index >= MAX_EXPANDED:
            return
        # fold=0 puts a time skipped by the clocks after the gap and picks the first of a
        # repeated time, as RFC 5545 says.
        start = local.replace(tzinfo=zone).astimezone(dt.UTC)
        if before is not None and start >= before:
            return
        if after is not None and start + duration <= after:
            continue
        yield start


def iter_occurrences(meeting, *, after=None, before=None):
    """Yield the meeting's occurrences in a span, in order, leaving out cancelled ones."""
    if meeting.is_cancelled:
        return
    cancelled = cancelled_starts(meeting)
    duration = meeting.ends_at - meeting.starts_at
    for start in occurrence_starts(meeting, after=after, before=before):
        if start not in cancelled:
            yield Occurrence(meeting=meeting, starts_at=start, ends_at=start + duration)


def occurrences(meeting, *, after=None, before=None) -> list[Occurrence]:
    """Return the meeting's occurrences in a span, without the cancelled ones."""
    return list(iter_occurrences(meeting, after=after, before=before))


def cancelled_starts(meeting) -> set[dt.datetime]:
    cancellations = getattr(meeting, "_prefetched_objects_cache", {}).get("cancellations")
    if cancellations is None:
        cancellations = meeting.cancellations.all()
    return {cancellation.starts_at for cancellation in cancellations}


def is_occurrence_start(meeting, start: dt.datetime) -> bool:
    """Return whether a meeting has an occurrence starting at this instant."""
    for candidate in occurrence_starts(meeting, after=start):
        if candidate >= start:
            return candidate == start
    return False
