"""
Reads, including the one rule that answers "may this person join this room now, and as what".

The call page and the signaling consumer both ask `join_decision`; nothing else repeats the rule.
"""

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass, field

from django.db.models import Prefetch, Q
from django.db.models.functions import Lower
from django.db.models.lookups import In
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.selectors import confirmed_emails
from rooms import signaling
from rooms.models import Ban, CancelledOccurrence, Guest, Invitation, Meeting, Role, Room
from rooms.recurrence import Occurrence, iter_occurrences

# The refusals, named once in the wire protocol.
NOT_SIGNED_IN = signaling.NOT_SIGNED_IN
NOT_ALLOWED = signaling.NOT_ALLOWED
NO_SUCH_ROOM = signaling.NO_SUCH_ROOM
LOCKED = signaling.LOCKED
TOO_EARLY = signaling.TOO_EARLY
KICKED = signaling.KICKED
MEETING_OVER = signaling.MEETING_OVER
ENDED = signaling.ENDED

# The session key under which a browser keeps the guests it is, one per room.
GUEST_SESSION_KEY = "rooms_guests"
# The session key of a random id for the browser itself, which a ban can name.
BROWSER_SESSION_KEY = "rooms_browser"


@dataclass(frozen=True)
class JoinDecision:
    """The answer of the access rule; `code` names the reason when `allowed` is false."""

    allowed: bool
    code: str = ""
    message: str = ""
    role: str = ""
    lobby: bool = False
    occurrence: Occurrence | None = None
    opens_at: dt.datetime | None = None
    name: str = ""

    @property
    def is_host(self) -> bool:
        return self.role in (Role.HOST, Role.COHOST)


@dataclass
class Grant:
    """What a person's relation to a room gives them, before the lock and the clock."""

    role: str = ""
    personally_invited: bool = False
    all_meetings: bool = False
    meeting_ids: set[int] = field(default_factory=set)

    def covers(self, meeting: Meeting) -> bool:
        return self.all_meetings or meeting.pk in self.meeting_ids


def refuse(code: str, message: str, **extra) -> JoinDecision:
    return JoinDecision(allowed=False, code=code, message=message, **extra)


def browser_of(session, *, create: bool = False) -> str:
    """
    Return what a ban records of this browser: the SHA-256 of a random id kept in its session.

    With `create`, give a session that has no id yet a new one (the caller's session middleware
    saves it); otherwise return "" for such a session, which no ban can name.
    """
    if session is None:
        return ""
    browser_id = session.get(BROWSER_SESSION_KEY)
    if browser_id is None:
        if not create:
            return ""
        browser_id = session[BROWSER_SESSION_KEY] = secrets.token_urlsafe(24)
    return hashlib.sha256(browser_id.encode()).hexdigest()


def join_decision(
    room: Room | None,
    *,
    user=None,
    guest: Guest | None = None,
    browser: str = "",
    at: dt.datetime | None = None,
) -> JoinDecision:
    """
    Decide whether a user or guest may join a room at an instant, and in what role.

    Owners and co-hosts are hosts and may join any time, even a locked or ended call. Everyone
    else needs an invitation (or, in a room open to members, an account), must not be banned
    (as a person or as a browser), finds the room unlocked, and comes inside the join window of
    a meeting their invitation covers: from the room's opening minutes before an occurrence
    starts until it ends, unless a host ended that occurrence's call. A room with no meetings is
    open whenever access allows and no host has ended its call. Where the lobby is on, all but
    the personally invited wait there.
    """
    at = at or timezone.now()
    grant, refusal = standing_grant(room, user=user, guest=guest, browser=browser, at=at)
    if refusal is not None:
        return refusal
    is_host = grant.role in (Role.HOST, Role.COHOST)
    if room.locked and not is_host:
        return refuse(LOCKED, _("This room is locked. Ask a host to unlock it."))

    window = join_window(room, grant, at)
    if not is_host and not window.open:
        if window.opens_at is not None:
            return refuse(
                TOO_EARLY,
                _("This meeting opens at %(time)s.") % {"time": window.opens_at.isoformat()},
                opens_at=window.opens_at,
            )
        return refuse(MEETING_OVER, _("This meeting is over."))
    if not is_host and was_ended(room, window):
        opens_at = next_opening(room, grant, after=room.ended_at)
        return refuse(ENDED, _("A host ended this call."), opens_at=opens_at)
    lobby = room.lobby_enabled and not is_host and not grant.personally_invited
    return JoinDecision(
        allowed=True,
        role=grant.role,
        lobby=lobby,
        occurrence=window.occurrence,
        opens_at=window.opens_at,
        name=person_name(user, guest),
    )


def standing(
    room: Room | None,
    *,
    user=None,
    guest: Guest | None = None,
    browser: str = "",
    at: dt.datetime | None = None,
) -> JoinDecision:
    """
    Decide who a person is to a room now, leaving out the lock, the clock and the lobby.

    This is what a live call asks again when access changes while people are in it: a ban, a
    revoked invitation or a removed co-host concerns them; a lock or the end of a meeting's
    time does not turn them out.
    """
    grant, refusal = standing_grant(
        room, user=user, guest=guest, browser=browser, at=at or timezone.now()
    )
    if refusal is not None:
        return refusal
    return JoinDecision(allowed=True, role=grant.role, name=person_name(user, guest))


def standing_grant(
    room: Room | None, *, user, guest: Guest | None, browser: str, at: dt.datetime
) -> tuple[Grant, JoinDecision | None]:
    """Return what a person's relation to a room grants, or the refusal that comes first."""
    if room is None:
        return Grant(), refuse(NO_SUCH_ROOM, _("There is no such room."))
    signed_in = user is not None and user.is_authenticated
    if guest is not None and not signed_in:
        grant = guest_grant(room, guest, at)
    elif signed_in:
        grant = user_grant(room, user, at)
    else:
        return Grant(), refuse(
            NOT_SIGNED_IN, _("Sign in, or open your invitation link, to join this call.")
        )
    if is_banned(room, user=user if signed_in else None, guest=guest, browser=browser, at=at):
        return grant, refuse(KICKED, _("A host removed you from this call."))
    if not grant.role:
        return grant, refuse(NOT_ALLOWED, _("You are not invited to this room."))
    return grant, None


def person_name(user, guest: Guest | None) -> str:
    if user is not None and user.is_authenticated:
        return user.get_display_name()
    return guest.name if guest is not None else ""


def user_grant(room: Room, user, at: dt.datetime) -> Grant:
    if user.pk == room.owner_id:
        return Grant(role=Role.HOST, personally_invited=True, all_meetings=True)
    if room.co_hosts.filter(pk=user.pk).exists():
        return Grant(role=Role.COHOST, personally_invited=True, all_meetings=True)
    grant = Grant(all_meetings=room.access == Room.Access.MEMBERS)
    for invitation in invitations_of(user).filter(room=room).valid(at):
        # invitations_of returns the personal invitations that address this user and the links
        # they redeemed, nothing else: whatever is not a link is theirs.
        grant.personally_invited |= not invitation.is_link
        if invitation.role == Role.COHOST:
            grant.role = Role.COHOST
            grant.all_meetings = True
        elif not grant.role:
            grant.role = Role.PARTICIPANT
        if invitation.meeting_id is None:
            grant.all_meetings = True
        else:
            grant.meeting_ids.add(invitation.meeting_id)
    if room.access == Room.Access.MEMBERS and not grant.role:
        grant.role = Role.PARTICIPANT
    return grant


def guest_grant(room: Room, guest: Guest, at: dt.datetime) -> Grant:
    invitation = (
        Invitation.objects.valid(at)
        .filter(pk=guest.invitation_id, room=room, allow_guests=True)
        .only("meeting_id")
        .first()
    )
    if invitation is None:
        return Grant()
    return Grant(
        role=Role.PARTICIPANT,
        all_meetings=invitation.meeting_id is None,
        meeting_ids={invitation.meeting_id} if invitation.meeting_id else set(),
    )


def guest_for_session(session, room: Room) -> Guest | None:
    """Return the guest this browser session is in this room, if any."""
    if session is None:
        return None
    guest_id = session.get(GUEST_SESSION_KEY, {}).get(str(room.pk))
    if guest_id is None:
        return None
    return Guest.objects.filter(pk=guest_id).first()


def invitations_of(user):
    """
    Return the invitations addressed to a user or redeemed by them, in one query.

    Addressed: to their account, or by email to an address they confirmed; an address typed at
    sign-up and never confirmed matches nothing. Redeemed: an open link they used. A personal
    invitation is for its addressee alone, so a redemption of one by anybody else (made before
    that rule) grants nothing.
    """
    addressed = (
        Q(user=user)
        | Q(redemptions__user=user, user__isnull=True, email="")
        | (Q(user__isnull=True) & In(Lower("email"), confirmed_emails(user)))
    )
    return Invitation.objects.filter(addressed).distinct()


def is_banned(
    room: Room, *, user=None, guest: Guest | None = None, browser: str = "", at: dt.datetime
) -> bool:
    """Return whether a ban in force names this person (account or guest) or this browser."""
    if user is not None and user.pk == room.owner_id:
        return False
    person = Q(pk__in=[])
    if user is not None:
        person |= Q(user=user)
    if guest is not None:
        person |= Q(guest=guest)
    if browser:
        person |= Q(browser=browser)
    return bans_in_force(at).filter(person, room=room).exists()


def link_is_blocked(invitation: Invitation, at: dt.datetime | None = None) -> bool:
    """Return whether a guest who came by this link was removed, so it lets no new guest in."""
    return bans_in_force(at or timezone.now()).filter(invitation=invitation).exists()


def bans_in_force(at: dt.datetime):
    return Ban.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=at))


@dataclass(frozen=True)
class Window:
    open: bool
    occurrence: Occurrence | None = None
    opens_at: dt.datetime | None = None


def join_window(room: Room, grant: Grant, at: dt.datetime) -> Window:
    """
    Find the occurrence whose join window holds `at`, or else when the next window opens.

    A room with no meetings is always open to a grant for all of it. A grant for single
    meetings opens only their windows: nothing once they are cancelled or over.
    """
    meetings = list(active_meetings(room))
    if not meetings and grant.all_meetings:
        return Window(open=True)
    lead = dt.timedelta(minutes=room.opens_minutes_before)
    next_opening_at = None
    for meeting in meetings:
        if not grant.covers(meeting):
            continue
        occurrence = next_occurrence(meeting, at)
        if occurrence is None:
            continue
        opens_at = occurrence.starts_at - lead
        if opens_at <= at:
            return Window(open=True, occurrence=occurrence, opens_at=opens_at)
        if next_opening_at is None or opens_at < next_opening_at:
            next_opening_at = opens_at
    return Window(open=False, opens_at=next_opening_at)


def was_ended(room: Room, window: Window) -> bool:
    """Return whether a host ended the call of this open window (of an ad-hoc room: at all)."""
    if room.ended_at is None:
        return False
    return window.opens_at is None or room.ended_at >= window.opens_at


def next_opening(room: Room, grant: Grant, *, after: dt.datetime) -> dt.datetime | None:
    """Return when the first join window that opens after an instant opens, if any does."""
    lead = dt.timedelta(minutes=room.opens_minutes_before)
    openings = []
    for meeting in active_meetings(room):
        if not grant.covers(meeting):
            continue
        for occurrence in iter_occurrences(meeting, after=after):
            if occurrence.starts_at - lead > after:
                openings.append(occurrence.starts_at - lead)
                break
    return min(openings, default=None)


def active_meetings(room: Room):
    return room.meetings.filter(cancelled_at__isnull=True).prefetch_related(
        Prefetch("cancellations", queryset=CancelledOccurrence.objects.only("meeting", "starts_at"))
    )


def next_occurrence(meeting: Meeting, at: dt.datetime) -> Occurrence | None:
    """Return the meeting's first occurrence that has not ended at `at` and is not cancelled."""
    return next(iter_occurrences(meeting, after=at), None)


def rooms_of(user):
    """Return the rooms a user owns, co-hosts or holds a valid invitation to."""
    invited_room_ids = invitations_of(user).valid().values("room_id")
    return (
        Room.objects.filter(Q(owner=user) | Q(co_hosts=user) | Q(pk__in=invited_room_ids))
        .distinct()
        .select_related("owner")
    )


def visible_meetings(user):
    """
    Return the meetings a user hosts or is invited to, cancelled ones included.

    An invitation to one meeting shows only that meeting; an invitation to a room shows all of the
    room's meetings.
    """
    invitations = invitations_of(user).valid()
    room_wide = invitations.filter(meeting__isnull=True).values("room_id")
    single = invitations.filter(meeting__isnull=False).values("meeting_id")
    return (
        Meeting.objects.filter(
            Q(room__owner=user) | Q(room__co_hosts=user) | Q(room__in=room_wide) | Q(pk__in=single)
        )
        .distinct()
        .select_related("room")
        .prefetch_related("cancellations")
        .order_by("starts_at")
    )


def upcoming_occurrences(user, *, start: dt.datetime, end: dt.datetime) -> list[Occurrence]:
    """Return the occurrences running between two instants of the meetings a user can see."""
    found = [
        occurrence
        for meeting in visible_meetings(user).filter(cancelled_at__isnull=True)
        for occurrence in iter_occurrences(meeting, after=start, before=end)
    ]
    return sorted(found, key=lambda occurrence: occurrence.starts_at)
