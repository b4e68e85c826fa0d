"""
Emails about invitations and meetings.

Services call these from `transaction.on_commit`. Each message goes to one person, shows times in
that person's time zone, and carries the meeting as an iTIP calendar object (RFC 6047), so mail
programs offer to add, update or remove the event.
"""

import logging
import smtplib
import zoneinfo

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from rooms.calendar import absolute_url, effective_method, is_email, meeting_ics
from rooms.models import Invitation, Role
from rooms.recurrence import describe_rule

logger = logging.getLogger(__name__)

CALENDAR_FILENAME = "invite.ics"
FREQUENCY_LABELS = {
    "daily": gettext_lazy("every day"),
    "weekdays": gettext_lazy("every weekday, Monday to Friday"),
    "weekly": gettext_lazy("every week"),
    "monthly": gettext_lazy("every month"),
}


def send_invitation(invitation: Invitation, token: str) -> None:
    """Send an invitation link to its address, with the meeting's event when there is one."""
    if not invitation.email:
        return
    room = invitation.room
    meeting = invitation.meeting
    inviter = invitation.created_by or room.owner
    time_zone = recipient_time_zone(invitation, meeting)
    context = {
        "inviter": inviter.get_display_name(),
        "room": room,
        "link": absolute_url(reverse("rooms:invitation", kwargs={"token": token})),
        "expires_at": invitation.expires_at,
        "as_cohost": invitation.role == Role.COHOST,
        "time_zone": time_zone,
    }
    if meeting is not None:
        context.update(meeting_context(meeting))
    message = render_message(
        "invitation",
        subject=_("Invitation: %(title)s") % {"title": meeting.title if meeting else room.name},
        to=invitation.email,
        context=context,
        time_zone=time_zone,
        reply_to=inviter.email,
    )
    if meeting is not None:
        attach_event(message, meeting, method="REQUEST", attendee_email=invitation.email)
    deliver([message])


def send_meeting_update(meeting) -> None:
    """Send everyone invited the meeting as it is now: new times, rule and cancelled occurrences."""
    now = timezone.now()
    skipped = [
        cancellation.starts_at
        for cancellation in meeting.cancellations.all()
        if cancellation.starts_at >= now
    ]
    send_to_invitees(
        meeting,
        template="meeting_update",
        subject=_("Updated: %(title)s") % {"title": meeting.title},
        method="REQUEST",
        context={"skipped": skipped},
    )


def meeting_cancellation_messages(meeting, *, only: Invitation | None = None) -> list:
    """
    Return the messages that tell invitees a meeting will not take place, ready to deliver.

    They are built before the change is committed (and before anything is deleted), because a
    deleted room takes its invitations, and so the list of whom to tell, with it. `only` limits
    them to one invitation, for a withdrawn invitation.
    """
    return invitee_messages(
        meeting,
        template="meeting_cancellation",
        subject=_("Cancelled: %(title)s") % {"title": meeting.title},
        method="CANCEL",
        context={},
        recipients=[only] if only is not None else None,
    )


def send_meeting_cancellation(meeting) -> None:
    """Tell everyone invited that the meeting will not take place, and remove it from calendars."""
    deliver(meeting_cancellation_messages(meeting))


def send_to_invitees(meeting, *, template: str, subject: str, method: str, context: dict) -> None:
    deliver(
        invitee_messages(
            meeting, template=template, subject=subject, method=method, context=context
        )
    )


def invitee_messages(
    meeting, *, template: str, subject: str, method: str, context: dict, recipients=None
) -> list:
    messages = []
    for invitation in invitees(meeting) if recipients is None else recipients:
        time_zone = recipient_time_zone(invitation, meeting)
        message = render_message(
            template,
            subject=subject,
            to=invitation.email,
            context={**meeting_context(meeting), **context, "time_zone": time_zone},
            time_zone=time_zone,
            reply_to=meeting.room.owner.email,
        )
        attach_event(message, meeting, method=method, attendee_email=invitation.email)
        messages.append(message)
    return messages


def invitees(meeting) -> list[Invitation]:
    """
    Return one invitation per address invited to the meeting or to its whole room.

    Revoked invitations are left out; expired ones are not, so that the calendars of people
    whose link has expired still learn of changes to an event they hold.
    """
    invitations = (
        Invitation.objects.filter(
            Q(meeting=meeting) | Q(room_id=meeting.room_id, meeting__isnull=True),
            revoked_at__isnull=True,
        )
        .exclude(email="")
        .select_related("user")
        .order_by("created_at", "pk")
    )
    by_address: dict[str, Invitation] = {}
    for invitation in invitations:
        address = invitation.email.lower()
        kept = by_address.get(address)
        # An invitation to an account knows the person's time zone: prefer it.
        if kept is None or (kept.user_id is None and invitation.user_id is not None):
            by_address[address] = invitation
    return list(by_address.values())


def recipient_time_zone(invitation: Invitation, meeting) -> str:
    if invitation.user is not None:
        return invitation.user.time_zone
    if meeting is not None:
        return meeting.time_zone
    return settings.TIME_ZONE


def meeting_context(meeting) -> dict:
    return {
        "meeting": meeting,
        "room": meeting.room,
        "organizer": meeting.room.owner.get_display_name(),
        "repeats": describe_recurrence(meeting),
        "call_url": absolute_url(meeting.room.get_call_url()),
    }


def describe_recurrence(meeting) -> str:
    """Return how a meeting repeats, in words, or an empty string for a single meeting."""
    if not meeting.recurrence:
        return ""
    rule = describe_rule(meeting.recurrence)
    frequency = FREQUENCY_LABELS.get(rule["frequency"], gettext_lazy("on a custom schedule"))
    if rule["count"] is not None:
        return ngettext(
            "%(frequency)s, %(count)d time", "%(frequency)s, %(count)d times", rule["count"]
        ) % {"frequency": frequency, "count": rule["count"]}
    if rule["until"] is not None:
        return _("%(frequency)s until %(date)s") % {
            "frequency": frequency,
            "date": formats.date_format(rule["until"], "l j F Y"),
        }
    return str(frequency)


def render_message(
    template: str, *, subject: str, to: str, context: dict, time_zone: str, reply_to: str = ""
) -> EmailMultiAlternatives:
    """Render a message from its text and HTML templates, times shown in the recipient's zone."""
    subject = " ".join(subject.split())  # a title with a line break must not break the header
    context = {**context, "subject": subject}
    with timezone.override(zoneinfo.ZoneInfo(time_zone)):
        text = render_to_string(f"rooms/email/{template}.txt", context)
        html = render_to_string(f"rooms/email/{template}.html", context)
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        to=[to],
        reply_to=[reply_to] if reply_to and is_email(reply_to) else None,
    )
    message.attach_alternative(html, "text/html")
    return message


def attach_event(message, meeting, *, method: str, attendee_email: str) -> None:
    method = effective_method(meeting, method)
    ics = meeting_ics(meeting, method=method, attendee_email=attendee_email)
    # Django adds the charset; the method parameter tells mail programs what to do with it.
    message.attach(CALENDAR_FILENAME, ics.decode(), f"text/calendar; method={method}")


def deliver(messages: list) -> None:
    """
    Send messages over one connection, logging failures rather than raising them.

    These run after the change has been committed: a mail server that is down must not turn a
    saved meeting into an error page, and one refused address must not keep the others waiting.
    """
    if not messages:
        return
    try:
        with get_connection() as connection:
            for message in messages:
                try:
                    connection.send_messages([message])
                except (smtplib.SMTPException, OSError):
                    logger.exception("Could not send a meeting email to %s", ", ".join(message.to))
    except (smtplib.SMTPException, OSError):
        logger.exception("Could not reach the mail server for %d meeting email(s)", len(messages))
