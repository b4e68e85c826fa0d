"""
Reads about accounts: which email addresses a person has shown they own.

Anyone can type any address at sign-up. Only an address confirmed through the link mailed to it
(allauth's `EmailAddress` with `verified=True`) may stand for its owner, for instance to match the
invitations sent to it.
"""

from allauth.account.models import EmailAddress
from django.db.models.functions import Lower

from accounts.models import User


def confirmed_emails(user):
    """
    Return the user's confirmed email addresses, lower-cased, as a lazy queryset of strings.

    Evaluated, it is one query; inside another queryset's filter, a subquery.
    """
    return EmailAddress.objects.filter(user=user, verified=True).values_list(
        Lower("email"), flat=True
    )


def has_confirmed_email(user, email: str) -> bool:
    """Return whether this user has confirmed this address (in any letter case)."""
    if not email or not user.is_authenticated:
        return False
    return email.lower() in set(confirmed_emails(user))


def owners_of_confirmed_emails(emails: list[str]) -> dict[str, User]:
    """Return the account that confirmed each of these addresses, by lower-cased address."""
    wanted = {email.lower() for email in emails}
    found = (
        EmailAddress.objects.filter(verified=True)
        .annotate(address=Lower("email"))
        .filter(address__in=wanted)
        .select_related("user")
    )
    return {found_address.address: found_address.user for found_address in found}


def unconfirmed_emails(user) -> list[str]:
    """
    Return the user's addresses that are not confirmed yet, the account's own address first.

    The account's address counts even before allauth has a record of it (accounts made by
    `createsuperuser` or in the admin have none until their owner opens the email page).
    """
    rows = EmailAddress.objects.filter(user=user).order_by("email").values_list("email", "verified")
    confirmed = {email.lower() for email, verified in rows if verified}
    unconfirmed = {email.lower(): email for email, verified in rows if not verified}
    own = (user.email or "").lower()
    if own and own not in confirmed:
        unconfirmed = {own: unconfirmed.get(own, user.email), **unconfirmed}
    return list(unconfirmed.values())
