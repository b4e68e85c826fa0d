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
import urllib.request
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
            DJANGO_MEDIA_ROOT=str(directory / "media"),
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
                "conference.server",
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

    def assert_no_crash(self, port: int) -> None:
        """Fail if a server's log shows a consumer that raised or would not stop."""
        log = self.log(port)
        for sign in ("Exception inside application", "Traceback", "took too long to shut down"):
            assert sign not in log, log


def people_in_call(port: int, slug: str, session_key: str) -> list[str]:
    """Ask the people endpoint of a call, as its pre-join screen does."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/rooms/{slug}/call/people/",
        headers={"Cookie": f"sessionid={session_key}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return json.loads(response.read())["people"]


# For seed scripts: `session_for(user)` returns the key of a new signed-in session of that user,
# `session_with(values)` that of a new session holding these values.
SESSIONS = """
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore

def session_with(values):
    session = SessionStore()
    session.update(values)
    session.create()
    return session.session_key

def session_for(user):
    return session_with({
        SESSION_KEY: str(user.pk),
        BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
        HASH_SESSION_KEY: user.get_session_auth_hash(),
    })
"""

SEED_CALL = """
from tests.factories import RoomFactory, UserFactory

owner = UserFactory(username="olga", display_name="Olga")
room = RoomFactory(owner=owner, name="Across", access="members", media=MEDIA, max_participants=12)
people = {"olga": owner}
for name in NAMES:
    people[name] = UserFactory(username=name, display_name=name.title())
print(json.dumps({"slug": room.slug, "sessions": {n: session_for(u) for n, u in people.items()}}))
"""


def seed_call(site: LiveSite, *names: str, media: str = "auto") -> dict:
    """
    Make a members room of this media mode (for up to 12) owned by olga, and signed-in sessions
    for olga and each name.
    """
    return site.run(f"MEDIA = {media!r}\nNAMES = {list(names)!r}\n" + SESSIONS + SEED_CALL)
