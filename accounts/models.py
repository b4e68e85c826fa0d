import secrets
import zoneinfo

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(_("%(value)s is not a known time zone."), params={"value": value})


def new_calendar_feed_key() -> str:
    return secrets.token_hex(16)


class User(AbstractUser):
    """A person with an account. Guests who join by invitation have none."""

    display_name = models.CharField(
        _("display name"),
        max_length=80,
        blank=True,
        help_text=_("How others see you in calls. Your username is used when this is empty."),
    )
    time_zone = models.CharField(
        _("time zone"),
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text=_("Meeting times are shown to you in this time zone."),
    )
    # Part of what the private calendar feed URL signs; replacing it retires the old URL.
    calendar_feed_key = models.CharField(
        max_length=32, default=new_calendar_feed_key, editable=False
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    def __str__(self):
        return self.get_display_name()

    def get_display_name(self) -> str:
        return self.display_name or self.get_full_name() or self.username
