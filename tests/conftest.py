import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.test import Client

from tests.factories import UserFactory

BASE_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


class RedisServer:
    """A redis-server of the test's own, on a free port, that can be stopped and started again."""

    def __init__(self):
        self.port = free_port()
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: run `bash scripts/system-packages`")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def user(db):
    return UserFactory(username="alice", display_name="Alice Liddell")


@pytest.fixture
def other_user(db):
    return UserFactory(username="bob", display_name="Bob")


@pytest.fixture
def alice_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def subprocess_env(**overrides: str) -> dict[str, str]:
    """The environment for a child process of the project, without this process's overrides."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(overrides)
    return env


def django_settings(expression: str, **env: str) -> subprocess.CompletedProcess:
    """
    Start Django in a new process with these environment variables and print an expression of
    its settings (`s`), as an operator starting the site with them would get it.
    """
    code = "import django; django.setup(); from django.conf import settings as s; "
    code += f"print({expression})"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=subprocess_env(DJANGO_SETTINGS_MODULE="conference.settings", **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Hash test passwords cheaply; production keeps Django's slow default."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
