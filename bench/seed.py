"""
Seed a site's database for the bench, fast: people, signed-in sessions and rooms, in bulk.

    python -m bench.seed --pairs 1000 --groups 10 --group-size 6

Run it with the site's environment (DJANGO_SETTINGS_MODULE, DATABASE_URL, DJANGO_SECRET_KEY: the
sessions are signed with the key the server will check them with). It prints one JSON object:

    {"warmup": {"slug": ..., "sessions": [k1, k2]},
     "pairs": [{"slug": ..., "sessions": [k1, k2]}, ...],
     "groups": [{"slug": ..., "sessions": [k1, ..., k6]}, ...]}

Every seat is a person of their own with a session of their own, in a room open to members (any
signed-in person may join it) owned by someone who never joins, so every seat joins as a
participant. Passwords are unusable, not hashed (hashing a thousand of them would take minutes),
and the rows are written with bulk_create: tests/factories.py is the slow, thorough way.
"""

import argparse
import datetime as dt
import json
import secrets


def seed(*, pairs: int, groups: int, group_size: int) -> dict:
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.base import VALID_KEY_CHARS
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.db import transaction
    from django.utils import timezone
    from django.utils.crypto import get_random_string

    from accounts.models import User
    from rooms.models import Room

    run = secrets.token_hex(3)  # the same database may be seeded again
    rooms = [("warmup", 2)] + [(f"pair-{n}", 2) for n in range(pairs)]
    rooms += [(f"group-{n}", group_size) for n in range(groups)]
    seats = sum(size for _name, size in rooms)

    def person(username: str) -> User:
        user = User(username=username, email=f"{username}@example.com", display_name=username)
        user.set_unusable_password()
        return user

    expires = timezone.now() + dt.timedelta(seconds=settings.SESSION_COOKIE_AGE)
    with transaction.atomic():
        owner = person(f"bench-{run}-owner")
        owner.save()
        people = User.objects.bulk_create(
            [person(f"bench-{run}-{n}") for n in range(seats)], batch_size=1000
        )
        Room.objects.bulk_create(
            [
                Room(
                    owner=owner,
                    name=f"Bench {name}",
                    slug=f"bench-{run}-{name}",
                    access=Room.Access.MEMBERS,
                    # The default, 6: a room of two whose last pair has just left takes the
                    # next pair even before the site has seen the last ones out.
                    max_participants=max(size, 6),
                )
                for name, size in rooms
            ],
            batch_size=1000,
        )
        store = SessionStore()
        sessions = [
            Session(
                session_key=get_random_string(32, VALID_KEY_CHARS),
                session_data=store.encode(
                    {
                        SESSION_KEY: str(user.pk),
                        BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                        HASH_SESSION_KEY: user.get_session_auth_hash(),
                    }
                ),
                expire_date=expires,
            )
            for user in people
        ]
        Session.objects.bulk_create(sessions, batch_size=1000)

    keys = iter(session.session_key for session in sessions)
    seated = {
        name: {"slug": f"bench-{run}-{name}", "sessions": [next(keys) for _ in range(size)]}
        for name, size in rooms
    }
    return {
        "warmup": seated["warmup"],
        "pairs": [seated[f"pair-{n}"] for n in range(pairs)],
        "groups": [seated[f"group-{n}"] for n in range(groups)],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.seed", description=__doc__.split("\n")[1]
    )
    parser.add_argument("--pairs", type=int, default=500, help="rooms of two")
    parser.add_argument("--groups", type=int, default=10, help="larger rooms, for the storm")
    parser.add_argument("--group-size", type=int, default=6, help="seats in each larger room")
    args = parser.parse_args(argv)

    import django

    django.setup()
    print(json.dumps(seed(pairs=args.pairs, groups=args.groups, group_size=args.group_size)))


if __name__ == "__main__":
    main()
