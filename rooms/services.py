"""
Writes. Every function is keyword-only, atomic, validates before saving, and sends its emails and
live-call notices only once the transaction has committed.
"""

import datetime as dt
import hashlib
import re
import secrets
import unicodedata

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _

from rooms import emails, live, selectors
from rooms.models import (
    CALL_FILE_FOLDER,
    Attendance,
    Ban,
    CallFile,
    CancelledOccurrence,
    Guest,
    Invitation,
    Meeting,
    Redemption,
    Role,
    Room,
    hash_token,
)
from rooms.recurrence import is_occurrence_start

ROOM_FIELDS = [
    "name",
    "description",
    "access",
    "lobby_enabled",
    "locked",
    "max_participants",
    "media",
    "opens_minutes_before",
]
MEETING_FIELDS = ["title", "description", "starts_at", "ends_at", "time_zone", "recurrence"]


def unique_slug(name: str) -> str:
    base = slugify(name)[:40] or "room"
    while True:
        slug = f"{base}-{secrets.token_hex(3)}"
        if not Room.objects.filter(slug=slug).exists():
            return slug


@transaction.atomic
def room_create(*, owner, name: str, **fields) -> Room:
    room = Room(owner=owner, name=name, slug=unique_slug(name), **fields)
    room.full_clean()
    room.save()
    return room


@transaction.atomic
def room_update(*, room: Room, **fields) -> Room:
    was_locked = room.locked
    for name, value in fields.items():
        if name not in ROOM_FIELDS:
            raise TypeError(f"room_update() cannot change {name!r}")
        setattr(room, name, value)
    room.full_clean()
    room.save(update_fields=[*fields, "updated_at"])
    if room.locked != was_locked:
        transaction.on_commit(lambda: live.room_locked(room.slug, locked=room.locked))
    if "access" in fields:
        transaction.on_commit(lambda: live.access_changed(room.slug))
    return room


@transaction.atomic
def room_set_locked(*, room: Room, locked: bool) -> Room:
    return room_update(room=room, locked=locked)


@transaction.atomic
def room_delete(*, room: Room) -> None:
    slug = room.slug
    meetings = list(room.meetings.filter(cancelled_at__isnull=True))
    for meeting in meetings:
        meeting_cancel(meeting=meeting)
    call_files_delete(room=room)
    room.delete()
    transaction.on_commit(lambda: live.call_end(slug))


@transaction.atomic
def call_end(*, room: Room, ended_by: str = "") -> Room:
    """
    End the room's live call for everyone: the occurrence running now stays closed to all but
    hosts (an ad-hoc room, until a host starts the call again). `ended_by` is the peer id of the
    host who ended it from the call, who is told so in their own words.
    """
    room.ended_at = timezone.now()
    room.save(update_fields=["ended_at", "updated_at"])
    call_files_delete(room=room)  # what was shared in the call goes with it
    transaction.on_commit(lambda: live.call_end(room.slug, ended_by=ended_by))
    return room


@transaction.atomic
def call_reopen(*, room: Room) -> Room:
    """Let people into a call a host ended, as a host joining it again does."""
    if room.ended_at is not None:
        room.ended_at = None
        room.save(update_fields=["ended_at", "updated_at"])
    return room


@transaction.atomic
def co_host_add(*, room: Room, user) -> None:
    if user.pk == room.owner_id:
        raise ValidationError(_("The owner is already a host."))
    room.co_hosts.add(user)
    transaction.on_commit(lambda: live.access_changed(room.slug))


@transaction.atomic
def co_host_remove(*, room: Room, user) -> None:
    room.co_hosts.remove(user)
    transaction.on_commit(lambda: live.access_changed(room.slug))


@transaction.atomic
def meeting_schedule(
    *,
    room: Room,
    title: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    time_zone: str,
    description: str = "",
    recurrence: str = "",
    created_by=None,
) -> Meeting:
    meeting = Meeting(
        room=room,
        title=title,
        description=description,
        starts_at=starts_at,
        ends_at=ends_at,
        time_zone=time_zone,
        recurrence=recurrence,
        created_by=created_by,
    )
    validate_meeting(meeting)
    meeting.save()
    return meeting


@transaction.atomic
def meeting_update(*, meeting: Meeting, **fields) -> Meeting:
    """Change a meeting, raise its SEQUENCE, and send invitees the updated event."""
    meeting = Meeting.objects.select_for_update().get(pk=meeting.pk)
    for name, value in fields.items():
        if name not in MEETING_FIELDS:
            raise TypeError(f"meeting_update() cannot change {name!r}")
        setattr(meeting, name, value)
    validate_meeting(meeting)
    if {"starts_at", "time_zone", "recurrence"} & fields.keys():
        # Cancelled occurrences name the old times; they would not match the new ones.
        meeting.cancellations.all().delete()
    meeting.sequence = F("sequence") + 1
    meeting.save(update_fields=[*fields, "sequence", "updated_at"])
    meeting.refresh_from_db()
    transaction.on_commit(lambda: emails.send_meeting_update(meeting))
    return meeting


@transaction.atomic
def meeting_cancel(*, meeting: Meeting) -> Meeting:
    """Cancel every occurrence of a meeting and send invitees the cancellation."""
    meeting = Meeting.objects.select_for_update().get(pk=meeting.pk)
    if meeting.is_cancelled:
        return meeting
    meeting.cancelled_at = timezone.now()
    meeting.sequence = F("sequence") + 1
    meeting.save(update_fields=["cancelled_at", "sequence", "updated_at"])
    meeting.refresh_from_db()
    # Built now: deleting the room right after would take the list of invitees with it.
    messages = emails.meeting_cancellation_messages(meeting)
    transaction.on_commit(lambda: emails.deliver(messages))
    return meeting


@transaction.atomic
def occurrence_cancel(*, meeting: Meeting, starts_at: dt.datetime) -> CancelledOccurrence:
    """Cancel one occurrence of a recurring meeting; invitees get the event with its EXDATE."""
    meeting = Meeting.objects.select_for_update().get(pk=meeting.pk)
    if meeting.is_cancelled:
        raise ValidationError(_("The meeting is cancelled already."))
    if not is_occurrence_start(meeting, starts_at):
        raise ValidationError(_("The meeting has no occurrence at that time."))
    cancellation, created = CancelledOccurrence.objects.get_or_create(
        meeting=meeting, starts_at=starts_at
    )
    if created:
        Meeting.objects.filter(pk=meeting.pk).update(
            sequence=F("sequence") + 1, updated_at=timezone.now()
        )
        meeting.refresh_from_db()
        transaction.on_commit(lambda: emails.send_meeting_update(meeting))
    return cancellation


def validate_meeting(meeting: Meeting) -> None:
    meeting.full_clean()
    if meeting.ends_at <= meeting.starts_at:
        raise ValidationError({"ends_at": _("A meeting must end after it starts.")})


@transaction.atomic
def invitation_create(
    *,
    room: Room,
    created_by,
    meeting: Meeting | None = None,
    email: str = "",
    user=None,
    role: str = Role.PARTICIPANT,
    allow_guests: bool = False,
    expires_at: dt.datetime | None = None,
    max_uses: int | None = None,
    label: str = "",
) -> tuple[Invitation, str]:
    """
    Make an invitation and return it with its token, which is not stored and not shown again.

    An invitation with an email address (or to a user who has one) is sent by email, with the
    meeting's calendar event when it is for a meeting.
    """
    if meeting is not None and meeting.room_id != room.pk:
        raise ValidationError({"meeting": _("That meeting is in another room.")})
    if user is not None and not email:
        email = user.email
    token = Invitation.new_token()
    invitation = Invitation(
        room=room,
        meeting=meeting,
        label=label,
        email=email,
        user=user,
        role=role,
        allow_guests=allow_guests,
        expires_at=expires_at,
        max_uses=max_uses,
        created_by=created_by,
    )
    invitation.set_token(token)
    invitation.full_clean()
    invitation.save()
    if invitation.email:
        transaction.on_commit(lambda: emails.send_invitation(invitation, token))
    return invitation, token


@transaction.atomic
def invitation_revoke(*, invitation: Invitation) -> Invitation:
    """Withdraw an invitation; whoever received it by email has the events taken off."""
    if invitation.revoked_at is not None:
        return invitation
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    transaction.on_commit(lambda: live.access_changed(invitation.room.slug))
    if invitation.email:
        meetings = (
            [invitation.meeting]
            if invitation.meeting_id
            else invitation.room.meetings.filter(cancelled_at__isnull=True)
        )
        messages = [
            message
            for meeting in meetings
            if not meeting.is_cancelled
            for message in emails.meeting_cancellation_messages(meeting, only=invitation)
        ]
        transaction.on_commit(lambda: emails.deliver(messages))
    return invitation


def invitation_for_token(token: str) -> Invitation | None:
    return (
        Invitation.objects.select_related("room", "meeting")
        .filter(token_hash=hash_token(token))
        .first()
    )


# The refusal of an invitation link that the invitation page tells apart (it answers 403).
NOT_YOURS = "not_yours"


def invitation_refusal(invitation: Invitation, user) -> ValidationError | None:
    """
    Return why this person may not use this invitation's link, or None when they may.

    A personal invitation (to an account, or to an address) is for its addressee alone: anyone
    else signed in is refused, and someone not signed in is asked to sign in as the addressee.
    An open link takes any signed-in user, and guests when it allows them.
    """
    signed_in = user is not None and user.is_authenticated
    if not invitation.is_link:
        if not signed_in:
            return ValidationError(
                _(
                    "This invitation was sent to one person. Sign in as them, or sign up with "
                    "the email address it was sent to."
                ),
                code="sign_in",
            )
        if not invitation.addresses(user):
            return ValidationError(
                _(
                    "This invitation is for someone else. Sign in as the person it was sent "
                    "to, or ask the host for access."
                ),
                code=NOT_YOURS,
            )
        return None
    if not signed_in and not invitation.allow_guests:
        return ValidationError(_("Sign in to use this invitation."), code="sign_in")
    return None


@transaction.atomic
def invitation_redeem(
    *, token: str, user=None, guest_name: str = "", guest: Guest | None = None
) -> tuple[Invitation, Guest | None]:
    """
    Use an invitation link: a signed-in user becomes an invitee, anyone else a guest.

    Its addressee uses a personal invitation without counting a use; nobody else can. `guest`
    is the guest this browser already is in the invitation's room: if it came by this link it
    stays that guest, under the name given now. A new guest needs a link that allows guests,
    that no ban in force names (a guest who came by it was removed) and that has let in fewer
    than INVITATION_GUEST_LIMIT guests. A use is counted with one conditional UPDATE, so
    concurrent requests cannot exceed the limit; a user who already holds the invitation uses
    nothing.
    """
    invitation = invitation_for_token(token)
    if invitation is None:
        raise ValidationError(_("This invitation link is not valid."), code="invalid")
    now = timezone.now()
    if invitation.is_revoked:
        raise ValidationError(_("This invitation was withdrawn."), code="revoked")
    if invitation.is_expired(now):
        raise ValidationError(_("This invitation has expired."), code="expired")
    refusal = invitation_refusal(invitation, user)
    if refusal is not None:
        raise refusal

    signed_in = user is not None and user.is_authenticated
    if signed_in and (not invitation.is_link or invitation.redemptions.filter(user=user).exists()):
        return invitation, None
    if not signed_in:
        if guest is not None and guest.invitation_id == invitation.pk:
            return invitation, guest_rename(guest=guest, name=guest_name)
        if selectors.link_is_blocked(invitation, now):
            raise ValidationError(
                _(
                    "A guest who came by this link was removed from the call, so it lets no "
                    "new guests in. Ask the host for a new link."
                ),
                code="blocked",
            )
        new_guest = Guest(invitation=invitation, name=guest_name.strip())
        new_guest.full_clean(exclude=["invitation"])

    if not count_use(invitation, now):
        raise ValidationError(_("This invitation has been used up."), code="used_up")
    if signed_in:
        try:
            with transaction.atomic():
                Redemption.objects.create(invitation=invitation, user=user)
        except IntegrityError:
            # The same user redeemed it a moment ago in another request.
            Invitation.objects.filter(pk=invitation.pk).update(use_count=F("use_count") - 1)
        return invitation, None
    # count_use's UPDATE holds the link's row until this transaction ends, so guests arriving
    # together by one link are counted one after another and the limit holds.
    limit = settings.INVITATION_GUEST_LIMIT
    if Guest.objects.filter(invitation=invitation).count() >= limit:
        raise ValidationError(
            _(
                "This link has let in %(limit)s guests, as many as one link may. Ask the host "
                "for a new link."
            ),
            code="guest_limit",
            params={"limit": limit},
        )
    new_guest.save()
    return invitation, new_guest


def count_use(invitation: Invitation, now: dt.datetime) -> bool:
    """
    Count one use of an invitation unless it is used up or withdrawn; return whether it counted.

    One conditional UPDATE: concurrent uses cannot pass the limit, and the row stays locked
    until the caller's transaction ends.
    """
    used = Invitation.objects.filter(
        Q(max_uses__isnull=True) | Q(use_count__lt=F("max_uses")),
        pk=invitation.pk,
        revoked_at__isnull=True,
    ).update(use_count=F("use_count") + 1)
    return used == 1


@transaction.atomic
def guest_rename(*, guest: Guest, name: str) -> Guest:
    guest.name = name.strip()
    guest.full_clean(exclude=["invitation"])
    guest.save(update_fields=["name"])
    return guest


@transaction.atomic
def invitation_rsvp(*, invitation: Invitation, answer: str) -> Invitation:
    if answer not in Invitation.Rsvp.values:
        raise ValidationError(_("Answer yes, maybe or no."))
    invitation.rsvp = answer
    invitation.save(update_fields=["rsvp"])
    return invitation


@transaction.atomic
def ban_create(
    *,
    room: Room,
    user=None,
    guest: Guest | None = None,
    browser: str = "",
    expires_at=None,
    created_by=None,
) -> Ban:
    """
    Keep a person out of a room: their account or guest, the browser they were in, and for a
    guest the link they came by (which then lets no new guest in). People in the call who are
    named by the ban are turned out within seconds.
    """
    if user is not None and user.pk == room.owner_id:
        raise ValidationError(_("The room's owner cannot be removed from it."))
    ban = Ban(
        room=room,
        user=user,
        guest=guest,
        invitation=guest.invitation if guest is not None else None,
        browser=browser,
        expires_at=expires_at,
        created_by=created_by,
    )
    ban.full_clean()
    ban.save()
    transaction.on_commit(lambda: live.access_changed(room.slug))
    return ban


@transaction.atomic
def attendance_record(*, joins: list[dict], leaves: list[str]) -> list[Attendance]:
    """
    Record people joining rooms' calls and leaving them, in one transaction; return the new rows.

    Each join has room_id, peer, name and role, and may have user_id, guest_id, meeting_id and
    occurrence_starts_at. Each leave is a peer id; a row that has ended already stays as it is.
    Live calls write in batches: a call's connect does not wait for a commit of its own.
    """
    rows = Attendance.objects.bulk_create([Attendance(**join) for join in joins])
    if leaves:
        Attendance.objects.filter(peer__in=leaves, left_at__isnull=True).update(
            left_at=timezone.now()
        )
    return rows


# --- Files shared in calls through the media server -----------------------------------------------

# Characters no shared file's name keeps: path separators, markup, and what Windows refuses.
FILE_NAME_REFUSED = re.compile(r'[<>:"/\\|?*]')
# A media type as a sender may claim it (RFC 6838 names), parameters left out.
MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)
UNKNOWN_MEDIA_TYPE = "application/octet-stream"


def call_file_name(name: str) -> str:
    """
    Return a shared file's name fit to show and to save: the last part of any path, without
    markup, control or format characters (a right-to-left override that disguises the extension),
    and without leading dots (a hidden file) or trailing dots and spaces; "file" if nothing is left.
    """
    name = re.split(r"[/\\]", unicodedata.normalize("NFC", name))[-1]
    name = " ".join(name.split())
    name = "".join(char for char in name if char.isprintable())
    name = FILE_NAME_REFUSED.sub("", name).strip(" .")
    limit = CallFile._meta.get_field("name").max_length
    if len(name) > limit:
        stem, dot, extension = name.rpartition(".")
        if dot and stem and len(extension) <= 16:
            name = f"{stem[: limit - len(extension) - 1].rstrip(' .')}.{extension}"
        else:
            name = name[:limit].rstrip(" .")
    return name or "file"


def call_file_media_type(claimed: str | None) -> str:
    """Return the media type a sender claimed for a file, or application/octet-stream."""
    claimed = (claimed or "").split(";")[0].strip().lower()
    return claimed if MEDIA_TYPE.fullmatch(claimed) else UNKNOWN_MEDIA_TYPE


def call_file_too_large() -> ValidationError:
    return ValidationError(
        _("A file shared in a call may be at most %(limit)s.")
        % {"limit": filesizeformat(settings.CALL_FILE_MAX_BYTES)},
        code="too-large",
    )


def file_sha256(upload: UploadedFile) -> str:
    """Return the SHA-256 of an uploaded file, reading it in chunks."""
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return digest.hexdigest()


@transaction.atomic
def call_file_add(
    *,
    room: Room,
    upload: UploadedFile,
    peer: str,
    author_name: str,
    user=None,
    guest: Guest | None = None,
    sha256: str = "",
) -> CallFile:
    """
    Keep a file shared in a room's call and, once committed, announce it to the call.

    `peer` is the sender's peer id in the call and `author_name` the name the access rule gives
    them. `sha256` is the upload's digest when the caller took it on the way in; otherwise it is
    taken here. An empty file or one over CALL_FILE_MAX_BYTES is refused, and nothing is stored.
    """
    if not upload.size:
        raise ValidationError(_("The file is empty."), code="empty")
    if upload.size > settings.CALL_FILE_MAX_BYTES:
        raise call_file_too_large()
    call_file = CallFile(
        room=room,
        user=user if user is not None and user.is_authenticated else None,
        guest=guest,
        author_name=author_name[: CallFile._meta.get_field("author_name").max_length],
        peer=peer,
        name=call_file_name(upload.name or ""),
        size=upload.size,
        mime=call_file_media_type(upload.content_type),
        sha256=sha256 or file_sha256(upload),
    )
    call_file.full_clean(exclude=["data"])
    # A temporary upload is moved into place, not copied; the stored name is the id alone.
    call_file.data.save(call_file.name, upload, save=False)
    try:
        call_file.save()
    except Exception:
        call_file.data.delete(save=False)
        raise
    message = {**call_file.describe(), "from": {"id": peer, "name": call_file.author_name}}
    transaction.on_commit(lambda: live.call_file(room.slug, message))
    return call_file


@transaction.atomic
def call_files_delete(*, room: Room) -> int:
    """Delete the files shared in a room's call, and their stored data; return how many."""
    return delete_call_files(CallFile.objects.filter(room=room))


@transaction.atomic
def call_files_delete_old(*, before: dt.datetime) -> int:
    """
    Delete the files shared in calls before an instant, and their stored data; also the stored
    data of that age that no file stands for (its room was deleted, its upload failed half-way).
    Return how many files went.
    """
    deleted = delete_call_files(CallFile.objects.filter(created_at__lt=before))
    storage = CallFile._meta.get_field("data").storage
    folder = CALL_FILE_FOLDER
    try:
        _folders, names = storage.listdir(folder)
    except FileNotFoundError:
        return deleted
    stored = {f"{folder}/{name}" for name in names}
    known = set(CallFile.objects.filter(data__in=stored).values_list("data", flat=True))
    stray = [name for name in stored - known if storage.get_modified_time(name) < before]
    transaction.on_commit(lambda: remove_stored(stray))
    return deleted


def delete_call_files(files) -> int:
    """Delete these files' rows now and their stored data once the deletion has committed."""
    names = [name for name in files.values_list("data", flat=True) if name]
    deleted, _by_model = files.delete()
    transaction.on_commit(lambda: remove_stored(names))
    return deleted


def remove_stored(names: list[str]) -> None:
    storage = CallFile._meta.get_field("data").storage
    for name in names:
        storage.delete(name)
