import zoneinfo

from allauth.account.forms import SignupForm as AllauthSignupForm
from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import User


def time_zone_choices() -> list[tuple[str, str]]:
    return [(name, name.replace("_", " ")) for name in sorted(zoneinfo.available_timezones())]


class SignupForm(AllauthSignupForm):
    """allauth's sign-up with the profile's display name and time zone asked up front."""

    display_name = forms.CharField(
        label=_("Display name"),
        max_length=80,
        required=False,
        help_text=_("How others see you in calls."),
    )
    time_zone = forms.ChoiceField(label=_("Time zone"), choices=time_zone_choices, initial="UTC")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            # static/js/time-zone.js proposes the browser's zone in place of UTC; a form sent
            # back with an error keeps the zone its person chose.
            self.fields["time_zone"].widget.attrs["data-propose-browser-zone"] = ""

    def save(self, request):
        user = super().save(request)
        user.display_name = self.cleaned_data["display_name"]
        user.time_zone = self.cleaned_data["time_zone"]
        user.save(update_fields=["display_name", "time_zone"])
        return user


class ProfileForm(forms.ModelForm):
    time_zone = forms.ChoiceField(label=_("Time zone"), choices=time_zone_choices)

    class Meta:
        model = User
        fields = ["display_name", "time_zone"]
