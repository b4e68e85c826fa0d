"""Small factories for the objects most tests need."""

import itertools

from accounts.models import User

_numbers = itertools.count(1)
PASSWORD = "correct horse battery staple"  # noqa: S105


def UserFactory(**fields) -> User:  # noqa: N802 - reads like the factory_boy classes it stands for
    number = next(_numbers)
    fields.setdefault("username", f"user{number}")
    fields.setdefault("email", f"{fields['username']}@example.com")
    password = fields.pop("password", PASSWORD)
    return User.objects.create_user(password=password, **fields)


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
