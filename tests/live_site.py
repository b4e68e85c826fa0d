"""
The real site in daphne processes of its own, for tests that cross processes or restart them.

The site runs on a SQLite file of the test's own (and a Redis of the test's own when given), and
is seeded by running Python in the project's environment, as an operator's script would.
"""

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import BASE_DIR, free_port, subprocess_env, wait_for_port


class LiveSite:
    def __init__(self, directory: Path, *, redis_url: str = "", **settings: str):
        self.env = subprocess_env(
            DJANGO_SETTINGS_MODULE="conference.settings",
            DATABASE_URL=f"sqlite:///{directory / 'site.sqlite3'}",
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            REDIS_URL=redis_url,
            REDIS_PREFIX=f"test-{directory.name}",
            **settings,
        )
        self.servers: dict[int, subprocess.Popen] = {}
        self.logs = directory
        self.manage("migrate", "--noinput")

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def run(self, code: str):
        """Run Python with Django set up against the site's database; return what it prints."""
        program = "import django, json\ndjango.setup()\n" + textwrap.dedent(code)
        result = subprocess.run(
            [sys.executable, "-c", program],
            cwd=BASE_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    def start(self, port: int | None = None) -> int:
        port = port or free_port()
        log = open(self.logs / f"daphne-{port}.log", "ab")  # noqa: SIM115 - closed with the process
        self.servers[port] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "conference.asgi:application",
            ],
            cwd=BASE_DIR,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(port, timeout=30)
        return port

    def kill(self, port: int) -> None:
        """End a server the hard way: no close frames, no clean-up, as when a machine dies."""
        process = self.servers.pop(port)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self, port: int) -> None:
        process = self.servers.pop(port)
        process.terminate()
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for port in list(self.servers):
            self.stop(port)

    def log(self, port: int) -> str:
        return (self.logs / f"daphne-{port}.log").read_text(errors="replace")


SEED_CALL = """
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.auth import SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY
from tests.factories import UserFactory, RoomFactory

def session_for(user):
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return session.session_key

owner = UserFactory(username="olga", display_name="Olga")
room = RoomFactory(owner=owner, name="Across", access="members")
people = {"olga": owner}
for name in NAMES:
    people[name] = UserFactory(username=name, display_name=name.title())
print(json.dumps({"slug": room.slug, "sessions": {n: session_for(u) for n, u in people.items()}}))
"""


def seed_call(site: LiveSite, *names: str) -> dict:
    """Make a members room owned by olga, and signed-in sessions for olga and each name."""
    return site.run(f"NAMES = {list(names)!r}\n" + SEED_CALL)
