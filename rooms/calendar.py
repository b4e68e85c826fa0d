"""
Calendar files: one meeting as an iCalendar object (RFC 5545) for download or an iTIP email
(RFC 5546), and each person's private feed of the meetings they can see.

Events keep the meeting's own time zone: DTSTART and DTEND are wall-clock times with a TZID and
a matching VTIMEZONE, so a weekly 09:00 Europe/Berlin meeting stays at 09:00 local across
daylight-saving changes in calendar applications, as it does in `rooms.recurrence`.
"""

import datetime as dt
import unicodedata
import zoneinfo
from collections import deque
from email.utils import parseaddr
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.text import slugify
from django.utils.translation import gettext as _
from icalendar import Calendar, Event, Timezone, vCalAddress, vRecur

from accounts.models import new_calendar_feed_key
from rooms.recurrence import occurrence_starts
from rooms.selectors import visible_meetings

PRODID = "-//Conference//Meetings//EN"
DEFAULT_SITE_URL = "http://127.0.0.1:8000"
FEED_KEY_SALT = "rooms.calendar.feed"
METHODS = ("PUBLISH", "REQUEST", "CANCEL")
# Calendar applications poll a subscribed feed; this asks them not to do it more often.
FEED_REFRESH_INTERVAL = dt.timedelta(hours=1)


def site_url() -> str:
    """Return the configured address of the site, without a trailing slash."""
    return getattr(settings, "SITE_URL", DEFAULT_SITE_URL).rstrip("/")


def absolute_url(path: str, request=None) -> str:
    """Return the absolute URL of a path: on the request's host when there is one."""
    if request is not None:
        return request.build_absolute_uri(path)
    return site_url() + path


def event_uid(meeting) -> str:
    """
    Return the meeting's UID in calendars.

    The host comes from SITE_URL, never from a request: the same event reaches people by email
    (no request) and by download, and a UID that differed between the two would make calendar
    applications keep two copies of the meeting.
    """
    host = urlsplit(site_url()).hostname or "localhost"
    return f"{meeting.uid}@{host}"


def meeting_ics(
    meeting, *, method: str = "PUBLISH", request=None, attendee_email: str | None = None
) -> bytes:
    """
    Return a calendar with one meeting as an event.

    `method` is the iTIP method: PUBLISH for a download, REQUEST for an invitation or update,
    CANCEL for a cancellation; a cancelled meeting is always sent as CANCEL.
    """
    method = effective_method(meeting, method)
    calendar = new_calendar(method)
    calendar.add_component(
        meeting_event(meeting, method=method, request=request, attendee_email=attendee_email)
    )
    add_time_zones(calendar, [meeting])
    return calendar.to_ical()


def effective_method(meeting, method: str) -> str:
    """Return the iTIP method a meeting's calendar object is sent with: CANCEL once cancelled."""
    method = method.upper()
    if method not in METHODS:
        raise ValueError(f"Unknown calendar method {method!r}")
    return "CANCEL" if meeting.is_cancelled else method


def feed_ics(user, *, request=None) -> bytes:
    """Return the calendar of every meeting a user can see, cancelled ones marked so."""
    meetings = list(visible_meetings(user).select_related("room__owner"))
    calendar = new_calendar("PUBLISH")
    name = one_line(user.get_display_name())
    calendar.calendar_name = _("Meetings of %(name)s") % {"name": name}
    calendar.refresh_interval = FEED_REFRESH_INTERVAL
    calendar.add("x-published-ttl", FEED_REFRESH_INTERVAL)
    for meeting in meetings:
        calendar.add_component(meeting_event(meeting, method="PUBLISH", request=request))
    add_time_zones(calendar, meetings)
    return calendar.to_ical()


def ics_filename(meeting) -> str:
    """Return a file name for the meeting's calendar file that is safe in any header."""
    stem = slugify(meeting.title)[:60].strip("-") or "meeting"
    return f"{stem}.ics"


def feed_token(user) -> str:
    """Return the secret part of the user's private feed URL."""
    return salted_hmac(
        FEED_KEY_SALT, f"{user.pk}:{user.calendar_feed_key}", algorithm="sha256"
    ).hexdigest()


def feed_user(user_id: int, token: str):
    """Return the active user whose feed URL this is, or None."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None or not constant_time_compare(feed_token(user), token):
        return None
    return user


def feed_regenerate(user) -> str:
    """Give the user a new feed URL, retire the old one, and return the new token."""
    user.calendar_feed_key = new_calendar_feed_key()
    user.save(update_fields=["calendar_feed_key"])
    return feed_token(user)


def new_calendar(method: str) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    return calendar


def meeting_event(meeting, *, method: str, request=None, attendee_email: str | None = None):
    """Return the VEVENT of a meeting, its rule, cancelled occurrences and organizer included."""
    zone = zoneinfo.ZoneInfo(meeting.time_zone)
    call_url = absolute_url(meeting.room.get_call_url(), request)
    cancelled = method == "CANCEL" or meeting.is_cancelled

    event = Event()
    event.add("uid", event_uid(meeting))
    event.add("dtstamp", timezone.now())
    event.add("created", meeting.created_at)
    event.add("last-modified", meeting.updated_at)
    event.add("sequence", meeting.sequence)
    event.add("dtstart", meeting.starts_at.astimezone(zone))
    event.add("dtend", meeting.ends_at.astimezone(zone))
    if meeting.recurrence:
        event.add("rrule", rule_in_utc(meeting.recurrence, zone))
    exdates = sorted(cancellation.starts_at for cancellation in meeting.cancellations.all())
    if exdates:
        event.add("exdate", [start.astimezone(zone) for start in exdates])
    event.add("summary", plain_text(meeting.title))
    event.add("description", event_description(meeting, call_url))
    event.add("location", call_url)
    event.add("url", call_url)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("organizer", organizer(meeting.room.owner))
    if attendee_email:
        event.add("attendee", attendee(attendee_email, method=method))
    return event


def event_description(meeting, call_url: str) -> str:
    join = _("Join the call: %(url)s") % {"url": call_url}
    description = plain_text(meeting.description).strip()
    return f"{description}\n\n{join}" if description else join


def rule_in_utc(rule_text: str, zone: zoneinfo.ZoneInfo) -> vRecur:
    """
    Return a stored rule with its UNTIL in UTC.

    Rules are stored for expansion on local wall-clock times, so UNTIL is a local time; RFC 5545
    wants it in UTC when DTSTART has a TZID. A date alone means its local midnight, as
    python-dateutil reads it when the app expands the rule.
    """
    rule = vRecur.from_ical(rule_text)
    if "UNTIL" in rule:
        until = rule["UNTIL"][0]
        if not isinstance(until, dt.datetime):
            until = dt.datetime.combine(until, dt.time())
        if until.tzinfo is None:
            until = until.replace(tzinfo=zone)
        rule["UNTIL"] = [until.astimezone(dt.UTC)]
    return rule


def organizer(owner) -> vCalAddress:
    """Return the room owner as ORGANIZER, or the site's sender when the owner has no address."""
    email = owner.email if is_email(owner.email) else parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    address = vCalAddress(f"mailto:{email}")
    address.params["CN"] = one_line(owner.get_display_name())
    return address


def attendee(email: str, *, method: str) -> vCalAddress:
    # The address goes into the calendar unescaped (it is a URI, not text), so it must be one.
    validate_email(email)
    address = vCalAddress(f"mailto:{email}")
    address.params["CUTYPE"] = "INDIVIDUAL"
    address.params["ROLE"] = "REQ-PARTICIPANT"
    if method == "REQUEST":
        address.params["PARTSTAT"] = "NEEDS-ACTION"
        address.params["RSVP"] = "TRUE"
    return address


def is_email(value: str) -> bool:
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True


def plain_text(text: str) -> str:
    """
    Return user text fit for an iCalendar TEXT value.

    The library escapes line breaks, commas and semicolons, but lets other control characters
    through, which RFC 5545 forbids and some parsers treat as line ends.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(char for char in text if char in "\n\t" or unicodedata.category(char) != "Cc")


def one_line(text: str) -> str:
    """Return user text for a name: a parameter or title that has no use for line breaks."""
    return " ".join(plain_text(text).split())


def add_time_zones(calendar: Calendar, meetings) -> None:
    """Add a VTIMEZONE for every zone the events use, covering all their occurrences."""
    if not meetings:
        return
    first = min(meeting.starts_at for meeting in meetings).date()
    last = max(last_start(meeting) for meeting in meetings).date()
    calendar.add_missing_timezones(
        # A year early: the first start's date in UTC can be a day before its local date.
        first_date=dt.date(first.year - 1, 1, 1),
        # A rule without an end repeats beyond what the app expands: cover the years after too.
        last_date=max(Timezone.DEFAULT_LAST_DATE, dt.date(last.year + 2, 1, 1)),
    )


def last_start(meeting) -> dt.datetime:
    last = deque(occurrence_starts(meeting), maxlen=1)
    return last[0] if last else meeting.starts_at
