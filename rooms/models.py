import hashlib
import secrets
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import validate_time_zone
from accounts.selectors import has_confirmed_email


def hash_token(token: str) -> str:
    """Return the stored form of a secret token: its SHA-256, never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


class Role(models.TextChoices):
    HOST = "host", _("Host")
    COHOST = "cohost", _("Co-host")
    PARTICIPANT = "participant", _("Participant")


class Room(models.Model):
    class Access(models.TextChoices):
        MEMBERS = "members", _("Any signed-in user with the link")
        INVITED = "invited", _("Only invited people")

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="owned_rooms"
    )
    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(_("address"), max_length=60, unique=True)
    description = models.TextField(_("description"), blank=True)
    access = models.CharField(
        _("who may join"), max_length=10, choices=Access.choices, default=Access.INVITED
    )
    lobby_enabled = models.BooleanField(
        _("lobby"),
        default=False,
        help_text=_("People who were not personally invited wait until a host admits them."),
    )
    locked = models.BooleanField(
        _("locked"), default=False, help_text=_("Nobody but hosts can join a locked room.")
    )

    class Media(models.TextChoices):
        AUTOMATIC = "auto", _("Automatic: peer-to-peer up to 4 people, then the media server")
        MESH = "mesh", _("Always peer-to-peer")
        SFU = "sfu", _("Always through the media server")

    max_participants = models.PositiveSmallIntegerField(
        _("maximum participants"),
        default=6,
        validators=[MinValueValidator(2), MaxValueValidator(50)],
        help_text=_(
            "At most 12 in a peer-to-peer call; up to 50 where the site has a media server."
        ),
    )
    media = models.CharField(
        _("how video travels"),
        max_length=4,
        choices=Media.choices,
        default=Media.AUTOMATIC,
        help_text=_(
            "Peer-to-peer, every browser sends its video to every other one: best for small "
            "calls. Through the media server (when the site has one), each sends it once."
        ),
    )
    opens_minutes_before = models.PositiveSmallIntegerField(
        _("opens minutes before"),
        default=10,
        validators=[MaxValueValidator(240)],
        help_text=_("How many minutes before a meeting starts people may join."),
    )
    co_hosts = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="co_hosted_rooms",
        verbose_name=_("co-hosts"),
    )
    # Set when a host ends the call for everyone: the occurrence running then stays closed (an
    # ad-hoc room, until a host starts the call again).
    ended_at = models.DateTimeField(_("call ended at"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(max_participants__gte=2, max_participants__lte=50),
                name="room_max_participants_2_to_50",
            ),
            models.CheckConstraint(
                condition=Q(media__in=["auto", "mesh", "sfu"]), name="room_media_valid"
            ),
            models.CheckConstraint(
                condition=Q(opens_minutes_before__lte=240), name="room_opens_at_most_4h_before"
            ),
            models.CheckConstraint(
                condition=Q(access__in=["members", "invited"]), name="room_access_valid"
            ),
        ]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("rooms:detail", kwargs={"slug": self.slug})

    def get_call_url(self):
        return reverse("rooms:call", kwargs={"slug": self.slug})

    def clean(self):
        super().clean()
        if self.max_participants and self.max_participants > self.largest_call():
            raise ValidationError(
                {
                    "max_participants": _(
                        "At most %(limit)s people fit in a call of this room: more need the "
                        "media server, which this site does not have or the room does not use."
                    )
                    % {"limit": self.largest_call()}
                }
            )

    def may_use_sfu(self) -> bool:
        """Return whether this room's calls may go through a media server."""
        return bool(settings.JANUS_URLS) and self.media != self.Media.MESH

    def largest_call(self) -> int:
        return (
            settings.SFU_MAX_PARTICIPANTS if self.may_use_sfu() else settings.MESH_MAX_PARTICIPANTS
        )

    def participant_limit(self) -> int:
        """Return how many people the call takes: the room's own limit, within its media's."""
        return min(self.max_participants, self.largest_call())

    def is_host(self, user) -> bool:
        """Return whether this user is the owner or a co-host (not counting invitations)."""
        if not user.is_authenticated:
            return False
        return user.pk == self.owner_id or self.co_hosts.filter(pk=user.pk).exists()


class Meeting(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="meetings")
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    starts_at = models.DateTimeField(_("starts at"))
    ends_at = models.DateTimeField(_("ends at"))
    time_zone = models.CharField(_("time zone"), max_length=64, validators=[validate_time_zone])
    recurrence = models.CharField(
        _("recurrence"),
        max_length=200,
        blank=True,
        help_text=_("An RFC 5545 RRULE, expanded in the meeting's own time zone."),
    )
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    sequence = models.PositiveIntegerField(default=0, editable=False)
    cancelled_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="meeting_ends_after_start"
            ),
        ]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("rooms:meeting", kwargs={"slug": self.room.slug, "pk": self.pk})

    @property
    def duration(self):
        return self.ends_at - self.starts_at

    @property
    def is_cancelled(self) -> bool:
        return self.cancelled_at is not None


class CancelledOccurrence(models.Model):
    """One occurrence of a recurring meeting that will not take place."""

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="cancellations")
    starts_at = models.DateTimeField(_("original start"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["starts_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["meeting", "starts_at"], name="cancelled_occurrence_unique"
            ),
        ]

    def __str__(self):
        return f"{self.meeting} @ {self.starts_at:%Y-%m-%d %H:%M %Z}"


class InvitationQuerySet(models.QuerySet):
    def usable(self, at=None):
        """Keep the invitations that are neither revoked nor expired nor used up."""
        at = at or timezone.now()
        return self.filter(
            Q(revoked_at__isnull=True),
            Q(expires_at__isnull=True) | Q(expires_at__gt=at),
            Q(max_uses__isnull=True) | Q(use_count__lt=F("max_uses")),
        )

    def valid(self, at=None):
        """Keep the invitations that still grant access to those who redeemed them."""
        at = at or timezone.now()
        return self.filter(
            Q(revoked_at__isnull=True), Q(expires_at__isnull=True) | Q(expires_at__gt=at)
        )


class Invitation(models.Model):
    """
    An invitation to a room, or to one meeting in it.

    Addressed to a user and/or an email address, or an open link when neither is set. Only the
    token's hash is stored: the link is shown once, when it is made, and sent by email.
    """

    class Rsvp(models.TextChoices):
        PENDING = "pending", _("No answer yet")
        ACCEPTED = "accepted", _("Accepted")
        TENTATIVE = "tentative", _("Maybe")
        DECLINED = "declined", _("Declined")

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="invitations")
    meeting = models.ForeignKey(
        Meeting, on_delete=models.CASCADE, null=True, blank=True, related_name="invitations"
    )
    label = models.CharField(
        _("label"),
        max_length=80,
        blank=True,
        help_text=_("Seen by hosts only: what tells this link from the others."),
    )
    email = models.EmailField(_("email"), blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="invitations",
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    role = models.CharField(
        _("role"),
        max_length=12,
        choices=[(Role.PARTICIPANT, Role.PARTICIPANT.label), (Role.COHOST, Role.COHOST.label)],
        default=Role.PARTICIPANT,
    )
    allow_guests = models.BooleanField(
        _("guests without an account"),
        default=False,
        help_text=_("Whoever has the link may join with just a display name."),
    )
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    max_uses = models.PositiveIntegerField(
        _("use limit"), null=True, blank=True, validators=[MinValueValidator(1)]
    )
    use_count = models.PositiveIntegerField(default=0, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    rsvp = models.CharField(_("RSVP"), max_length=10, choices=Rsvp.choices, default=Rsvp.PENDING)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(max_uses__isnull=True) | Q(use_count__lte=F("max_uses")),
                name="invitation_uses_within_limit",
            ),
            models.CheckConstraint(
                condition=Q(max_uses__isnull=True) | Q(max_uses__gte=1),
                name="invitation_max_uses_positive",
            ),
            models.CheckConstraint(
                condition=Q(role__in=["participant", "cohost"]), name="invitation_role_valid"
            ),
        ]

    def __str__(self):
        target = self.user or self.email or _("open link")
        if self.label:
            return f"{self.room}: {self.label} ({target})"
        return f"{self.room}: {target}"

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(32)

    def set_token(self, token: str) -> None:
        self.token_hash = hash_token(token)

    @property
    def is_link(self) -> bool:
        return self.user_id is None and not self.email

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def is_expired(self, at=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (at or timezone.now())

    @property
    def is_used_up(self) -> bool:
        return self.max_uses is not None and self.use_count >= self.max_uses

    def is_valid(self, at=None) -> bool:
        return not self.is_revoked and not self.is_expired(at)

    def addresses(self, user) -> bool:
        """
        Return whether this invitation is personally addressed to this user.

        An invitation by email addresses whoever confirmed that address, never someone who only
        typed it at sign-up.
        """
        if not user.is_authenticated:
            return False
        if self.user_id is not None:
            return self.user_id == user.pk
        return has_confirmed_email(user, self.email)


class Guest(models.Model):
    """A person without an account, in by an invitation link and bound to a browser session."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invitation = models.ForeignKey(Invitation, on_delete=models.CASCADE, related_name="guests")
    name = models.CharField(_("display name"), max_length=80)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.name

    @property
    def room(self) -> Room:
        return self.invitation.room


class Redemption(models.Model):
    """A signed-in user who used an invitation link: from then on an invitee."""

    invitation = models.ForeignKey(Invitation, on_delete=models.CASCADE, related_name="redemptions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="redemptions"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["invitation", "user"], name="redemption_once_per_user"),
        ]

    def __str__(self):
        return f"{self.user} via {self.invitation}"


class Ban(models.Model):
    """
    Someone kicked out of a room: kept out until the ban expires, or for good if never.

    It holds against every way the person came in: their account (a user) or their guest, the
    browser session they were in (`browser`, see `selectors.browser_of`), and for a guest the
    link they redeemed, which lets no new guest in while the ban lasts.
    """

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="bans")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    guest = models.ForeignKey(Guest, on_delete=models.CASCADE, null=True, blank=True)
    invitation = models.ForeignKey(
        Invitation,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="bans",
        verbose_name=_("link"),
        help_text=_("The link the guest came by: it lets no new guest in while the ban lasts."),
    )
    # The SHA-256 of the random browser id kept in the person's session, or empty.
    browser = models.CharField(max_length=64, blank=True, editable=False)
    expires_at = models.DateTimeField(_("until"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, guest__isnull=True)
                | Q(user__isnull=True, guest__isnull=False),
                name="ban_user_xor_guest",
            ),
        ]

    def __str__(self):
        return f"{self.user or self.guest} banned from {self.room}"


class Attendance(models.Model):
    """Who was in which room (and meeting occurrence), from when to when."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="attendances")
    meeting = models.ForeignKey(
        Meeting, on_delete=models.SET_NULL, null=True, blank=True, related_name="attendances"
    )
    occurrence_starts_at = models.DateTimeField(_("occurrence"), null=True, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="attendances",
    )
    guest = models.ForeignKey(Guest, on_delete=models.SET_NULL, null=True, blank=True)
    name = models.CharField(_("name"), max_length=150)
    role = models.CharField(_("role"), max_length=12, choices=Role.choices)
    joined_at = models.DateTimeField(_("joined"), default=timezone.now)
    left_at = models.DateTimeField(_("left"), null=True, blank=True)
    # The call's id for the connection (docs/signaling.md): whichever process reports the peer
    # gone, its own or one that outlived it, ends the row by it.
    peer = models.CharField(_("peer id"), max_length=16, blank=True, editable=False, db_index=True)

    class Meta:
        ordering = ["-joined_at"]
        verbose_name_plural = _("attendance")
        constraints = [
            models.CheckConstraint(
                condition=Q(left_at__isnull=True) | Q(left_at__gte=F("joined_at")),
                name="attendance_leaves_after_joining",
            ),
        ]

    def __str__(self):
        return f"{self.name} in {self.room}"

    @property
    def duration(self):
        return self.left_at - self.joined_at if self.left_at else None


# The storage folder (under MEDIA_ROOT) of the files shared in calls.
CALL_FILE_FOLDER = "call-files"


def call_file_path(call_file: "CallFile", filename: str) -> str:
    """Store a call's file under its id alone: the name its sender gave never reaches the disk."""
    return f"{CALL_FILE_FOLDER}/{call_file.pk.hex}"


class CallFile(models.Model):
    """
    A file shared in a call through the media server: uploaded once, downloaded by the others.

    Kept until the call ends (`services.call_files_delete`) or `manage.py clearcallfiles` finds it
    old. `name` has no path and no markup (`services.call_file_name`); `mime` is what the sender
    claimed, shown, never served.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="call_files")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    guest = models.ForeignKey(Guest, on_delete=models.SET_NULL, null=True, blank=True)
    author_name = models.CharField(_("shared by"), max_length=150)
    # The sender's peer id in the call (docs/signaling.md), for the announcement's `from`.
    peer = models.CharField(
        _("peer id"),
        max_length=64,
        validators=[RegexValidator(r"\A[A-Za-z0-9_-]+\Z")],
        editable=False,
    )
    name = models.CharField(_("file name"), max_length=255)
    size = models.PositiveBigIntegerField(_("size in bytes"))
    mime = models.CharField(_("media type"), max_length=255, blank=True)
    sha256 = models.CharField(
        "SHA-256", max_length=64, validators=[RegexValidator(r"\A[0-9a-f]{64}\Z")]
    )
    data = models.FileField(_("content"), upload_to=call_file_path, max_length=255)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(size__gt=0), name="call_file_not_empty"),
        ]

    def __str__(self):
        return f"{self.name} in {self.room}"

    def get_absolute_url(self):
        return reverse("rooms:call_file", kwargs={"slug": self.room.slug, "file_id": self.pk})

    def describe(self) -> dict:
        """Return what the uploader is answered and the call is told of this file."""
        return {
            "id": str(self.pk),
            "name": self.name,
            "size": self.size,
            "mime": self.mime,
            "sha256": self.sha256,
            "url": self.get_absolute_url(),
        }
