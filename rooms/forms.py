import datetime as dt
import zoneinfo

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.forms import time_zone_choices
from accounts.models import User
from accounts.selectors import owners_of_confirmed_emails
from rooms.models import Invitation, Role, Room
from rooms.recurrence import FREQUENCIES, MAX_COUNT, build_rule, describe_rule, local_datetime


class RoomForm(forms.ModelForm):
    class Meta:
        model = Room
        fields = [
            "name",
            "description",
            "access",
            "lobby_enabled",
            "max_participants",
            "media",
            "opens_minutes_before",
            "locked",
        ]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not settings.JANUS_URLS:
            del self.fields["media"]  # without a media server every call is peer-to-peer


class MeetingForm(forms.Form):
    """A meeting as a person thinks of it: a local date and times in a zone, and a repetition."""

    REPEAT_CHOICES = [
        ("", _("Does not repeat")),
        ("daily", _("Every day")),
        ("weekdays", _("Every weekday (Monday to Friday)")),
        ("weekly", _("Every week")),
        ("monthly", _("Every month")),
    ]

    title = forms.CharField(label=_("Title"), max_length=200)
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    date = forms.DateField(label=_("Date"), widget=forms.DateInput(attrs={"type": "date"}))
    start_time = forms.TimeField(
        label=_("Starts"), widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M")
    )
    end_time = forms.TimeField(
        label=_("Ends"),
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text=_("An end before the start means the next day."),
    )
    time_zone = forms.ChoiceField(label=_("Time zone"), choices=time_zone_choices)
    repeat = forms.ChoiceField(label=_("Repeat"), choices=REPEAT_CHOICES, required=False)
    repeat_until = forms.DateField(
        label=_("Until"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("The last day it may take place."),
    )
    repeat_count = forms.IntegerField(
        label=_("Or this many times"), required=False, min_value=1, max_value=MAX_COUNT
    )

    @classmethod
    def initial_for(cls, meeting) -> dict:
        zone = zoneinfo.ZoneInfo(meeting.time_zone)
        starts, ends = meeting.starts_at.astimezone(zone), meeting.ends_at.astimezone(zone)
        rule = describe_rule(meeting.recurrence)
        return {
            "title": meeting.title,
            "description": meeting.description,
            "date": starts.date(),
            "start_time": starts.time().replace(tzinfo=None),
            "end_time": ends.time().replace(tzinfo=None),
            "time_zone": meeting.time_zone,
            "repeat": rule["frequency"],
            "repeat_until": rule["until"],
            "repeat_count": rule["count"],
        }

    def clean(self):
        data = super().clean()
        date, start, end, zone = (
            data.get(key) for key in ("date", "start_time", "end_time", "time_zone")
        )
        if date and start and zone:
            try:
                data["starts_at"] = local_datetime(date, start, zone)
            except ValidationError as error:
                self.add_error("start_time", error)
        if date and start and end and zone and "starts_at" in data:
            end_date = date if end > start else date + dt.timedelta(days=1)
            try:
                data["ends_at"] = local_datetime(end_date, end, zone)
            except ValidationError as error:
                self.add_error("end_time", error)
        repeat = data.get("repeat")
        until, count = data.get("repeat_until"), data.get("repeat_count")
        if repeat and repeat not in FREQUENCIES:
            self.add_error("repeat", _("Pick one of the choices."))
        if repeat and until and count:
            self.add_error("repeat_count", _("End either on a date or after a number of times."))
        if repeat and not until and not count:
            self.add_error("repeat_until", _("Say when the repetition ends: a date or a count."))
        if repeat and until and date and until < date:
            self.add_error("repeat_until", _("The repetition cannot end before the first date."))
        if repeat and until and date and until > date + dt.timedelta(days=5 * 366):
            self.add_error("repeat_until", _("A meeting can repeat for at most five years."))
        if not self.errors:
            data["recurrence"] = build_rule(repeat or "", until=until, count=count)
        return data

    def meeting_fields(self) -> dict:
        data = self.cleaned_data
        return {
            key: data[key]
            for key in ("title", "description", "starts_at", "ends_at", "time_zone", "recurrence")
        }


class EmailInvitationForm(forms.Form):
    emails = forms.CharField(
        label=_("Email addresses"),
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("One or more addresses, separated by commas or new lines."),
    )
    meeting = forms.ModelChoiceField(
        label=_("For"), queryset=None, required=False, empty_label=_("Every meeting in this room")
    )
    role = forms.ChoiceField(
        label=_("Role"),
        choices=[(Role.PARTICIPANT, Role.PARTICIPANT.label), (Role.COHOST, Role.COHOST.label)],
    )

    def __init__(self, *args, room, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["meeting"].queryset = room.meetings.filter(cancelled_at__isnull=True)

    def clean_emails(self):
        addresses = [
            part.strip() for part in self.cleaned_data["emails"].replace("\n", ",").split(",")
        ]
        addresses = [address for address in addresses if address]
        validator = forms.EmailField()
        for address in addresses:
            try:
                validator.clean(address)
            except ValidationError:
                raise ValidationError(
                    _("%(address)s is not an email address."), params={"address": address}
                ) from None
        if not addresses:
            raise ValidationError(_("Enter at least one email address."))
        if len(addresses) > 50:
            raise ValidationError(_("Invite at most 50 people at a time."))
        return list(dict.fromkeys(address.lower() for address in addresses))

    def recipients(self) -> list[tuple[str, User | None]]:
        """
        Return each address with the account that confirmed it, if any.

        An address someone typed at sign-up but never confirmed binds the invitation to nobody:
        it stays an invitation by email, for whoever confirms that address.
        """
        addresses = self.cleaned_data["emails"]
        owners = owners_of_confirmed_emails(addresses)
        return [(address, owners.get(address)) for address in addresses]


class LinkInvitationForm(forms.ModelForm):
    meeting = forms.ModelChoiceField(
        label=_("For"), queryset=None, required=False, empty_label=_("Every meeting in this room")
    )
    expires_at = forms.DateTimeField(
        label=_("Expires"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text=_("In your time zone. Leave empty for no expiry."),
    )

    class Meta:
        model = Invitation
        fields = ["label", "meeting", "role", "allow_guests", "max_uses", "expires_at"]

    def __init__(self, *args, room, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["meeting"].queryset = room.meetings.filter(cancelled_at__isnull=True)

    def clean_expires_at(self):
        expires_at = self.cleaned_data["expires_at"]
        if expires_at is not None and expires_at <= timezone.now():
            raise ValidationError(
                _("That time has already passed. Choose a later one, or leave it empty.")
            )
        return expires_at


class CoHostForm(forms.Form):
    user = forms.CharField(label=_("Username or email"), max_length=254)

    def clean_user(self):
        value = self.cleaned_data["user"].strip()
        user = (
            User.objects.filter(username__iexact=value).first()
            or User.objects.filter(email__iexact=value).first()
        )
        if user is None:
            raise ValidationError(_("No account has that username or email."))
        return user


class GuestForm(forms.Form):
    name = forms.CharField(
        label=_("Your name"),
        max_length=80,
        help_text=_("Others in the call see this name."),
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise ValidationError(_("Enter a name."))
        return name


class OccurrenceCancelForm(forms.Form):
    starts_at = forms.DateTimeField()
