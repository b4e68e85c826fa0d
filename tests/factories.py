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
