"""The TURN credentials the site hands out, checked by a real coturn with use-auth-secret."""

import shutil
import subprocess
import time

import pytest

from rooms import turn
from tests.conftest import free_port

SECRET = "shared-with-coturn"  # noqa: S105


@pytest.fixture
def coturn(tmp_path):
    if shutil.which("turnserver") is None:
        pytest.fail("coturn is not installed: run `bash scripts/system-packages`")
    port = free_port()
    process = subprocess.Popen(
        [
            "turnserver",
            "-n",
            "--listening-ip=127.0.0.1",
            f"--listening-port={port}",
            "--relay-ip=127.0.0.1",
            "--use-auth-secret",
            f"--static-auth-secret={SECRET}",
            "--realm=conference.test",
            "--no-tls",
            "--no-dtls",
            "--allow-loopback-peers",
            "--no-cli",
            "--min-port=49160",
            "--max-port=49400",
            f"--db={tmp_path / 'turndb'}",
            f"--pidfile={tmp_path / 'turn.pid'}",
            "--log-file=stdout",
            "--simple-log",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)  # coturn listens on UDP; there is no port to poll
    yield port
    process.terminate()
    process.wait(timeout=10)


def allocate(port: int, username: str, credential: str) -> bool:
    """Ask coturn for a relay allocation with these credentials, as a browser's ICE agent would."""
    result = subprocess.run(
        [
            "turnutils_uclient",
            "-u",
            username,
            "-w",
            credential,
            "-p",
            str(port),
            "-n",
            "1",
            "-m",
            "1",
            "-y",
            "-c",
            "127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.returncode == 0


def relay_entry(settings, *, now=None):
    settings.TURN_URLS = ["turn:127.0.0.1:3478?transport=udp"]
    settings.TURN_SECRET = SECRET
    return turn.ice_servers(peer_id="peer1", now=now)[-1]


def test_coturn_accepts_the_credentials_the_site_hands_out(coturn, settings):
    entry = relay_entry(settings)

    assert allocate(coturn, entry["username"], entry["credential"])


def test_coturn_refuses_expired_credentials(coturn, settings):
    entry = relay_entry(settings, now=time.time() - settings.TURN_CREDENTIAL_LIFETIME - 60)

    assert not allocate(coturn, entry["username"], entry["credential"])


def test_coturn_refuses_credentials_made_with_another_secret(coturn, settings):
    entry = relay_entry(settings)
    settings.TURN_SECRET = "not-the-shared-secret"
    forged = turn.ice_servers(peer_id="peer1")[-1]

    assert not allocate(coturn, entry["username"], forged["credential"])
