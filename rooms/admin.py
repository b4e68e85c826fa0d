"""
The Django admin for rooms, meetings, invitations and attendance.

Writes that matter to someone outside the admin go through `rooms.services`, as they do on the
site: locking a room tells its live call, changing or cancelling a meeting raises its SEQUENCE and
sends invitees the update. An invitation's token hash is never shown, not even read-only.
"""

import csv
import datetime as dt

from dateutil import rrule
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch
from django.http import HttpResponse
from django.utils import timezone
from django.utils.formats import date_format, time_format
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from rooms import live, selectors, services
from rooms.models import (
    Attendance,
    Ban,
    CancelledOccurrence,
    Guest,
    Invitation,
    Meeting,
    Redemption,
    Room,
)
from rooms.recurrence import is_occurrence_start

# The admin's own sidebar repeats its index beside every page and leaves the lists too little
# width on a 1280 px screen; the breadcrumbs and the index lead everywhere it did.
admin.site.enable_nav_sidebar = False

# Spreadsheets run a cell that starts with one of these as a formula (OWASP "CSV injection").
CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def adopt(instance, saved) -> None:
    """
    Make the admin's unsaved instance stand for the row a service saved.

    The admin goes on to save the form's many-to-many fields and inlines against the instance it
    built, so that instance must become the saved row rather than be replaced by it.
    """
    instance.pk = saved.pk
    instance.refresh_from_db()
    instance._state.adding = False


class SetTimestampFilter(admin.SimpleListFilter):
    """Filter on whether a nullable timestamp (cancelled_at, revoked_at) is set."""

    field_name = ""

    def lookups(self, request, model_admin):
        return [("yes", _("Yes")), ("no", _("No"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(**{f"{self.field_name}__isnull": False})
        if self.value() == "no":
            return queryset.filter(**{f"{self.field_name}__isnull": True})
        return queryset


class CancelledFilter(SetTimestampFilter):
    title = _("cancelled")
    parameter_name = "cancelled"
    field_name = "cancelled_at"


class RevokedFilter(SetTimestampFilter):
    title = _("revoked")
    parameter_name = "revoked"
    field_name = "revoked_at"


# --- Rooms ---------------------------------------------------------------------------------------


class MeetingInline(admin.TabularInline):
    """A room's meetings, read-only: changes go through the meeting's own page and its services."""

    model = Meeting
    fields = ["title", "starts_at", "ends_at", "time_zone", "recurrence", "sequence", "cancelled"]
    readonly_fields = fields
    extra = 0
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(boolean=True, description=_("cancelled"))
    def cancelled(self, meeting):
        return meeting.is_cancelled


class InvitationInline(admin.TabularInline):
    """A room's invitations. New ones are made on the site, which shows their link once."""

    model = Invitation
    fields = [
        "label",
        "email",
        "user",
        "role",
        "allow_guests",
        "expires_at",
        "max_uses",
        "use_count",
        "revoked_at",
        "rsvp",
    ]
    readonly_fields = ["use_count", "revoked_at"]
    autocomplete_fields = ["user"]
    extra = 0
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")


class AttendanceInline(admin.TabularInline):
    """Who was in the room's calls: a record, so nobody adds, changes or deletes it here."""

    model = Attendance
    fields = [
        "name",
        "user",
        "guest",
        "role",
        "meeting",
        "occurrence_starts_at",
        "joined_at",
        "left_at",
    ]
    readonly_fields = fields
    extra = 0

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user", "guest", "meeting")


class RoomAdminForm(forms.ModelForm):
    class Meta:
        model = Room
        fields = ["owner", "co_hosts", *services.ROOM_FIELDS]

    def clean(self):
        cleaned_data = super().clean()
        owner = cleaned_data.get("owner")
        co_hosts = cleaned_data.get("co_hosts")
        if owner is not None and co_hosts is not None and owner in co_hosts:
            self.add_error("co_hosts", gettext("The owner is already a host."))
        return cleaned_data


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    # The meetings whose next occurrence the list shows, prefetched once for the whole page.
    UPCOMING_MEETINGS = "admin_upcoming_meetings"

    form = RoomAdminForm
    # Short headers and no column the change page alone needs: the list fits a 1280 px screen.
    list_display = [
        "owner",
        "name",
        "access",
        "locked",
        "lobby_enabled",
        "most",
        "next_meeting",
        "live_participants",
        "ended_at",
    ]
    list_display_links = ["name"]
    list_filter = ["access", "locked", "lobby_enabled", "media"]
    list_select_related = ["owner"]
    search_fields = ["name", "slug", "owner__username", "owner__email"]
    autocomplete_fields = ["owner", "co_hosts"]
    readonly_fields = ["slug", "ended_at", "created_at", "updated_at"]
    inlines = [MeetingInline, InvitationInline, AttendanceInline]
    actions = ["lock_rooms", "unlock_rooms", "end_calls"]

    def get_queryset(self, request):
        # Meetings that can still come up, with their cancelled occurrences: two queries for the
        # page instead of two per room. A one-off meeting that has ended cannot come up again.
        upcoming = (
            Meeting.objects.filter(cancelled_at__isnull=True)
            .exclude(recurrence="", ends_at__lte=timezone.now())
            .prefetch_related(
                Prefetch(
                    "cancellations",
                    queryset=CancelledOccurrence.objects.only("meeting", "starts_at"),
                )
            )
        )
        return (
            super()
            .get_queryset(request)
            .prefetch_related(
                Prefetch("meetings", queryset=upcoming, to_attr=self.UPCOMING_MEETINGS)
            )
        )

    @admin.display(description=_("at most"), ordering="max_participants")
    def most(self, room):
        return room.max_participants

    @admin.display(description=_("in the call now"))
    def live_participants(self, room):
        """How many are in the live call, and how it carries video: peer-to-peer or on which
        media server."""
        count = live.participant_count(room.slug)
        if not count:
            return 0
        media = live.call_media(room.slug)
        if media is None:
            return _("%(count)d, peer-to-peer") % {"count": count}
        return _("%(count)d, on %(server)s") % {"count": count, "server": media["server"]}

    @admin.display(description=_("next meeting"))
    def next_meeting(self, room):
        meetings = getattr(room, self.UPCOMING_MEETINGS, None)
        if meetings is None:
            meetings = selectors.active_meetings(room)
        now = timezone.now()
        starts = [
            occurrence.starts_at
            for meeting in meetings
            if (occurrence := selectors.next_occurrence(meeting, now)) is not None
        ]
        return min(starts, default=None)

    def save_model(self, request, obj, form, change):
        if not change:
            values = {name: getattr(obj, name) for name in services.ROOM_FIELDS}
            adopt(obj, services.room_create(owner=obj.owner, **values))
            return
        room_fields = {
            name: form.cleaned_data[name]
            for name in form.changed_data
            if name in services.ROOM_FIELDS
        }
        # The service compares against the stored room to tell a live call it was (un)locked.
        stored = Room.objects.get(pk=obj.pk)
        if "owner" in form.changed_data:
            stored.owner = obj.owner
            stored.save(update_fields=["owner", "updated_at"])
        if room_fields:
            services.room_update(room=stored, **room_fields)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if change and {"owner", "co_hosts"} & set(form.changed_data):
            # Who hosts the room changed: people in its live call get their new role at once.
            transaction.on_commit(lambda: live.access_changed(form.instance.slug))

    def delete_model(self, request, obj):
        services.room_delete(room=obj)

    def delete_queryset(self, request, queryset):
        for room in queryset:
            services.room_delete(room=room)

    @admin.action(description=_("Lock selected rooms"), permissions=["change"])
    def lock_rooms(self, request, queryset):
        self.set_locked(request, queryset, locked=True)

    @admin.action(description=_("Unlock selected rooms"), permissions=["change"])
    def unlock_rooms(self, request, queryset):
        self.set_locked(request, queryset, locked=False)

    def set_locked(self, request, queryset, *, locked: bool) -> None:
        changed = 0
        for room in queryset.filter(locked=not locked):
            services.room_set_locked(room=room, locked=locked)
            changed += 1
        if locked:
            message = ngettext("Locked %(count)d room.", "Locked %(count)d rooms.", changed)
        else:
            message = ngettext("Unlocked %(count)d room.", "Unlocked %(count)d rooms.", changed)
        self.message_user(request, message % {"count": changed}, messages.SUCCESS)

    @admin.action(description=_("End the call now"), permissions=["change"])
    def end_calls(self, request, queryset):
        ended = 0
        for room in queryset:
            services.call_end(room=room)
            ended += 1
        self.message_user(
            request,
            ngettext(
                "Ended the call, if any, in %(count)d room.",
                "Ended the calls, if any, in %(count)d rooms.",
                ended,
            )
            % {"count": ended},
            messages.SUCCESS,
        )


# --- Meetings ------------------------------------------------------------------------------------


class MeetingAdminForm(forms.ModelForm):
    class Meta:
        model = Meeting
        fields = ["room", *services.MEETING_FIELDS]

    def clean_recurrence(self):
        recurrence = self.cleaned_data["recurrence"]
        if recurrence:
            try:
                rrule.rrulestr(recurrence, dtstart=dt.datetime(2000, 1, 1))  # noqa: DTZ001
            except ValueError as error:
                raise ValidationError(
                    gettext("This is not an RRULE: %(error)s"), params={"error": error}
                ) from error
        return recurrence


class CancelledOccurrenceForm(forms.ModelForm):
    class Meta:
        model = CancelledOccurrence
        fields = ["starts_at"]

    def clean_starts_at(self):
        starts_at = self.cleaned_data["starts_at"]
        if not is_occurrence_start(self.instance.meeting, starts_at):
            raise ValidationError(gettext("The meeting has no occurrence at that time."))
        return starts_at


class CancelledOccurrenceInline(admin.TabularInline):
    """
    Cancel single occurrences of a meeting (saved through `services.occurrence_cancel`).

    Existing cancellations are read-only (without change permission the admin shows saved rows
    read-only and still takes new ones) and cannot be deleted: there is no service yet that
    brings an occurrence back and tells invitees so.
    """

    model = CancelledOccurrence
    form = CancelledOccurrenceForm
    fields = ["starts_at", "created_at"]
    readonly_fields = ["created_at"]
    extra = 0

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Meeting)
class MeetingAdmin(admin.ModelAdmin):
    form = MeetingAdminForm
    list_display = ["title", "room", "starts_at", "ends_at", "time_zone", "recurrence", "cancelled"]
    list_filter = ["time_zone", CancelledFilter]
    list_select_related = ["room"]
    search_fields = ["title", "room__name"]
    date_hierarchy = "starts_at"
    autocomplete_fields = ["room"]
    readonly_fields = ["uid", "sequence", "cancelled_at", "created_by", "created_at", "updated_at"]
    actions = ["cancel_meetings"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return self.readonly_fields
        # Invitations belong to the room, so a meeting stays in the room it was made in.
        return ["room", *self.readonly_fields]

    def get_inlines(self, request, obj):
        # A cancellation is checked against the stored meeting's occurrences, so it needs one.
        return [] if obj is None else [CancelledOccurrenceInline]

    @admin.display(boolean=True, description=_("cancelled"), ordering="cancelled_at")
    def cancelled(self, meeting):
        return meeting.is_cancelled

    def save_model(self, request, obj, form, change):
        if not change:
            meeting = services.meeting_schedule(
                room=obj.room,
                title=obj.title,
                description=obj.description,
                starts_at=obj.starts_at,
                ends_at=obj.ends_at,
                time_zone=obj.time_zone,
                recurrence=obj.recurrence,
                created_by=request.user,
            )
            adopt(obj, meeting)
            return
        fields = {
            name: form.cleaned_data[name]
            for name in form.changed_data
            if name in services.MEETING_FIELDS
        }
        if fields:
            services.meeting_update(meeting=obj, **fields)
            obj.refresh_from_db()

    def save_formset(self, request, form, formset, change):
        if formset.model is not CancelledOccurrence:
            super().save_formset(request, form, formset, change)
            return
        for cancellation in formset.save(commit=False):
            try:
                services.occurrence_cancel(meeting=form.instance, starts_at=cancellation.starts_at)
            except ValidationError as error:
                # The meeting's times changed in the same save and the occurrence went with them.
                self.message_user(request, " ".join(error.messages), messages.ERROR)

    @admin.action(description=_("Cancel selected meetings"), permissions=["change"])
    def cancel_meetings(self, request, queryset):
        cancelled = 0
        for meeting in queryset.filter(cancelled_at__isnull=True):
            services.meeting_cancel(meeting=meeting)
            cancelled += 1
        self.message_user(
            request,
            ngettext("Cancelled %(count)d meeting.", "Cancelled %(count)d meetings.", cancelled)
            % {"count": cancelled},
            messages.SUCCESS,
        )


@admin.register(CancelledOccurrence)
class CancelledOccurrenceAdmin(admin.ModelAdmin):
    """Read-only: occurrences are cancelled on their meeting's page, which tells invitees."""

    list_display = ["meeting", "starts_at", "created_at"]
    list_select_related = ["meeting"]
    search_fields = ["meeting__title", "meeting__room__name"]
    date_hierarchy = "starts_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Invitations ---------------------------------------------------------------------------------


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    # token_hash is not editable, so no form has it; it must stay out of every list below too.
    # Combined columns with short headers: the list fits a 1280 px screen beside its filters.
    list_display = [
        "room",
        "addressee",
        "meeting",
        "role",
        "guests",
        "uses",
        "state",
        "rsvp",
        "created_at",
    ]
    list_filter = ["role", "allow_guests", "rsvp", RevokedFilter, "room"]
    list_select_related = ["room", "meeting", "user"]
    search_fields = ["label", "email", "user__username", "room__name"]
    fields = [
        "room",
        "label",
        "meeting",
        "email",
        "user",
        "role",
        "allow_guests",
        "expires_at",
        "max_uses",
        "use_count",
        "revoked_at",
        "rsvp",
        "created_by",
        "created_at",
    ]
    # What an invitation grants (room, meeting) is fixed: its link is already out there.
    readonly_fields = ["room", "meeting", "use_count", "revoked_at", "created_by", "created_at"]
    autocomplete_fields = ["user"]
    actions = ["revoke_invitations"]

    def has_add_permission(self, request):
        # The token exists only when the invitation is made and must be shown to its maker once;
        # the site's invitation page does that, the admin has nowhere honest to show it.
        return False

    @admin.display(description=_("for"), ordering="label")
    def addressee(self, invitation):
        """Return whom it is for, after the label that tells links apart."""
        addressee = invitation.user or invitation.email or gettext("open link")
        return f"{invitation.label} · {addressee}" if invitation.label else addressee

    @admin.display(boolean=True, description=_("guests"), ordering="allow_guests")
    def guests(self, invitation):
        return invitation.allow_guests

    @admin.display(description=_("state"))
    def state(self, invitation):
        if invitation.is_revoked:
            return gettext("revoked")
        if invitation.is_expired():
            return gettext("expired")
        if invitation.is_used_up:
            return gettext("used up")
        return gettext("valid")

    @admin.display(description=_("uses"))
    def uses(self, invitation):
        if invitation.max_uses is None:
            return str(invitation.use_count)
        return f"{invitation.use_count}/{invitation.max_uses}"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        # Its role, addressee or expiry may concern someone in the room's live call right now.
        transaction.on_commit(lambda: live.access_changed(obj.room.slug))

    def delete_model(self, request, obj):
        slug = obj.room.slug
        super().delete_model(request, obj)
        transaction.on_commit(lambda: live.access_changed(slug))

    @admin.action(description=_("Revoke selected invitations"), permissions=["change"])
    def revoke_invitations(self, request, queryset):
        revoked = 0
        for invitation in queryset.filter(revoked_at__isnull=True):
            services.invitation_revoke(invitation=invitation)
            revoked += 1
        self.message_user(
            request,
            ngettext("Revoked %(count)d invitation.", "Revoked %(count)d invitations.", revoked)
            % {"count": revoked},
            messages.SUCCESS,
        )


@admin.register(Guest)
class GuestAdmin(admin.ModelAdmin):
    list_display = ["name", "invitation", "created_at"]
    list_select_related = ["invitation__room", "invitation__user"]
    search_fields = ["name", "invitation__room__name"]
    autocomplete_fields = ["invitation"]


@admin.register(Redemption)
class RedemptionAdmin(admin.ModelAdmin):
    list_display = ["user", "invitation", "created_at"]
    list_select_related = ["user", "invitation__room", "invitation__user"]
    search_fields = ["user__username", "user__email", "invitation__room__name"]
    autocomplete_fields = ["user", "invitation"]


@admin.register(Ban)
class BanAdmin(admin.ModelAdmin):
    """Bans made here reach a live call at once, as a host's kick does."""

    list_display = ["room", "user", "guest", "invitation", "expires_at", "created_by", "created_at"]
    list_select_related = ["room", "user", "guest", "invitation", "created_by"]
    search_fields = ["room__name", "user__username", "user__email", "guest__name"]
    autocomplete_fields = ["room", "user", "guest", "invitation"]
    readonly_fields = ["created_by", "created_at"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            transaction.on_commit(lambda: live.access_changed(obj.room.slug))
            return
        ban = services.ban_create(
            room=obj.room,
            user=obj.user,
            guest=obj.guest,
            expires_at=obj.expires_at,
            created_by=request.user,
        )
        if obj.invitation_id is not None and ban.invitation_id != obj.invitation_id:
            ban.invitation = obj.invitation
            ban.save(update_fields=["invitation"])
        adopt(obj, ban)


# --- Attendance ----------------------------------------------------------------------------------


def csv_cell(value) -> str:
    """Return a value as CSV text that a spreadsheet shows rather than runs."""
    text = "" if value is None else str(value)
    if text.startswith(CSV_FORMULA_PREFIXES):
        return "'" + text
    return text


@admin.register(Attendance)
class AttendanceAdmin(admin.ModelAdmin):
    # Few and short columns: the list fits a 1280 px screen beside its filters.
    list_display = ["name", "role", "call", "present", "duration"]
    list_filter = ["room", "role", "joined_at"]
    list_select_related = ["room", "meeting"]
    search_fields = ["name", "user__username", "room__name"]
    actions = ["export_csv"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    @admin.display(description=_("call"), ordering="room__name")
    def call(self, attendance):
        if attendance.meeting is None:
            return attendance.room.name
        return f"{attendance.room.name} · {attendance.meeting.title}"

    @admin.display(description=_("present"), ordering="joined_at")
    def present(self, attendance):
        """Return when the person joined and left, the day written once when it is one day."""
        joined = timezone.localtime(attendance.joined_at)
        if attendance.left_at is None:
            return f"{date_format(joined, 'DATETIME_FORMAT')}–…"
        left = timezone.localtime(attendance.left_at)
        same_day = left.date() == joined.date()
        until = time_format(left) if same_day else date_format(left, "DATETIME_FORMAT")
        return f"{date_format(joined, 'DATETIME_FORMAT')}–{until}"

    @admin.display(description=_("duration"))
    def duration(self, attendance):
        if attendance.duration is None:
            return None
        return dt.timedelta(seconds=int(attendance.duration.total_seconds()))

    @admin.action(description=_("Export selected as CSV"), permissions=["view"])
    def export_csv(self, request, queryset):
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="attendance.csv"'
        writer = csv.writer(response)
        writer.writerow(
            [
                gettext("name"),
                gettext("user"),
                gettext("guest"),
                gettext("room"),
                gettext("meeting"),
                gettext("occurrence start"),
                gettext("role"),
                gettext("joined"),
                gettext("left"),
                gettext("duration seconds"),
            ]
        )
        rows = queryset.select_related("user", "guest", "room", "meeting").order_by("joined_at")
        for attendance in rows:
            duration = attendance.duration
            writer.writerow(
                csv_cell(value)
                for value in [
                    attendance.name,
                    attendance.user.username if attendance.user else "",
                    attendance.guest.name if attendance.guest else "",
                    attendance.room.name,
                    attendance.meeting.title if attendance.meeting else "",
                    isoformat(attendance.occurrence_starts_at),
                    attendance.get_role_display(),
                    isoformat(attendance.joined_at),
                    isoformat(attendance.left_at),
                    int(duration.total_seconds()) if duration is not None else "",
                ]
            )
        return response


def isoformat(instant: dt.datetime | None) -> str:
    return instant.astimezone(dt.UTC).isoformat() if instant else ""
