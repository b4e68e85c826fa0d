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


class OwnServer:
    """A server process of the tests' own, which a test may stop and start again."""

    process: subprocess.Popen | None = None

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


class RedisServer(OwnServer):
    """A redis-server of the test's own, on a free port, that can be stopped and started again."""

    def __init__(self):
        self.port = free_port()

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


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer()
    server.start()
    yield server
    server.stop()


# Janus's libraries, as Debian installs them; the tests give Janus a configuration of their own.
JANUS_LIBRARIES = Path("/usr/lib/x86_64-linux-gnu/janus")
JANUS_CONFIG = """
general: {{
    configs_folder = "{folder}"
    plugins_folder = "{libraries}/plugins"
    transports_folder = "{libraries}/transports"
    events_folder = "{libraries}/events"
    loggers_folder = "{libraries}/loggers"
    debug_level = 4
    api_secret = "{api_secret}"
    admin_secret = "{admin_secret}"
    session_timeout = 60
}}
media: {{ }}
nat: {{ ice_ignore_list = "vmnet" }}
plugins: {{ disable = "{plugins_off}" }}
transports: {{ disable = "{transports_off}" }}
loggers: {{ disable = "libjanus_jsonlog.so" }}
events: {{ broadcast = false }}
"""
JANUS_WEBSOCKETS = """
general: {{ json = "compact" ws = true ws_port = {port} ws_ip = "127.0.0.1" wss = false }}
admin: {{
    admin_ws = true admin_ws_port = {admin_port} admin_ws_ip = "127.0.0.1" admin_wss = false
}}
"""


class JanusServer(OwnServer):
    """A Janus of the test's own: VideoRoom and the WebSocket transport only, on free ports."""

    api_secret = "test-api-secret"
    admin_secret = "test-admin-secret"

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.admin_port = free_port()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"ws://127.0.0.1:{self.admin_port}"

    def start(self):
        binary = shutil.which("janus")
        if binary is None:
            pytest.fail("janus is not installed: run `bash scripts/system-packages`")
        self.folder.mkdir(parents=True, exist_ok=True)
        plugins = [path.name for path in (JANUS_LIBRARIES / "plugins").glob("*.so")]
        transports = [path.name for path in (JANUS_LIBRARIES / "transports").glob("*.so")]
        (self.folder / "janus.jcfg").write_text(
            JANUS_CONFIG.format(
                folder=self.folder,
                libraries=JANUS_LIBRARIES,
                api_secret=self.api_secret,
                admin_secret=self.admin_secret,
                plugins_off=",".join(p for p in plugins if p != "libjanus_videoroom.so"),
                transports_off=",".join(t for t in transports if t != "libjanus_websockets.so"),
            )
        )
        (self.folder / "janus.transport.websockets.jcfg").write_text(
            JANUS_WEBSOCKETS.format(port=self.port, admin_port=self.admin_port)
        )
        (self.folder / "janus.plugin.videoroom.jcfg").write_text("general: { }\n")
        with open(self.folder / "janus.log", "ab") as log:
            self.process = subprocess.Popen(
                [binary, "-C", str(self.folder / "janus.jcfg"), "-F", str(self.folder)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port)
        wait_for_port(self.admin_port)


@pytest.fixture(scope="session")
def janus_server(tmp_path_factory):
    server = JanusServer(tmp_path_factory.mktemp("janus"))
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
