"""Small factories for the objects most tests need."""

import itertools

from allauth.account.models import EmailAddress

from accounts.models import User

_numbers = itertools.count(1)
PASSWORD = "correct horse battery staple"  # noqa: S105


def UserFactory(  # noqa: N802 - reads like the factory_boy classes it stands for
    *, verified_email: bool | None = True, **fields
) -> User:
    """
    Make an account whose address is confirmed, as after a sign-up and a click on the link.

    `verified_email=False` records the address unconfirmed (typed at sign-up, never confirmed);
    `None` leaves allauth no record of it at all, as `createsuperuser` does.
    """
    number = next(_numbers)
    fields.setdefault("username", f"user{number}")
    fields.setdefault("email", f"{fields['username']}@example.com")
    password = fields.pop("password", PASSWORD)
    user = User.objects.create_user(password=password, **fields)
    if verified_email is not None and user.email:
        EmailAddress.objects.create(
            user=user, email=user.email.lower(), verified=verified_email, primary=True
        )
    return user


def RoomFactory(**fields):  # noqa: N802
    from rooms import services

    owner = fields.pop("owner", None) or UserFactory()
    fields.setdefault("name", f"Room {next(_numbers)}")
    return services.room_create(owner=owner, **fields)


def MeetingFactory(**fields):  # noqa: N802
    import datetime as dt

    from django.utils import timezone

    from rooms import services

    room = fields.pop("room", None) or RoomFactory()
    starts_at = fields.pop("starts_at", None) or timezone.now() + dt.timedelta(days=1)
    fields.setdefault("ends_at", starts_at + dt.timedelta(hours=1))
    fields.setdefault("title", f"Meeting {next(_numbers)}")
    fields.setdefault("time_zone", "UTC")
    return services.meeting_schedule(room=room, starts_at=starts_at, **fields)
