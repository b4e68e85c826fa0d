from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    # allauth's app is "Accounts" in the admin too (it holds the email addresses): this one holds
    # the users.
    verbose_name = _("Users")
