"""
The site in daphne as `python -m conference.server` runs it (tests/live_site.py), seen by a client
over a real websocket: how it ends connections the transport refuses, and how it answers an
address that is no endpoint and an origin behind a TLS proxy.
"""

import asyncio
import contextlib
import json

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.live_site import LiveSite, seed_call
from tests.signaling_client import SignalingClient

KiB = 1024
MiB = 1024 * KiB
TOO_LARGE = {
    "type": "error",
    "code": "too-large",
    "message": "The message is larger than 81920 bytes.",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """
    One site for the module, configured as behind a proxy that ends TLS, with one trusted origin
    besides its own. A client that sends no X-Forwarded-Proto is still a plain http one.
    """
    site = LiveSite(
        tmp_path_factory.mktemp("site"),
        DJANGO_SECURE_PROXY_SSL_HEADER="true",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://app.example.org",
    )
    yield site
    site.stop_all()


@pytest.fixture(scope="module")
def port(site) -> int:
    return site.start()


@pytest.fixture(scope="module")
def call(site) -> dict:
    """A room, and a session signed in as its owner, olga."""
    return seed_call(site)


async def close_code(websocket: ClientConnection) -> int:
    """Read until the connection ends; return the close code (1006: ended without a close frame)."""
    async with asyncio.timeout(10):
        with contextlib.suppress(ConnectionClosed):
            async for _message in websocket:
                pass
    return websocket.close_code


async def join(port: int, call: dict) -> SignalingClient:
    return await SignalingClient.join(port, call["slug"], call["sessions"]["olga"])


# --- The transport's limits ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [MiB + 1, 2 * MiB], ids=["just-over-1-MiB", "2-MiB"])
async def test_a_message_over_the_transport_cap_gets_a_close_frame_with_1009(
    site, port, call, size
):
    client = await join(port, call)

    await client.websocket.send("x" * size)

    assert await close_code(client.websocket) == 1009
    assert "Traceback" not in site.log(port)


async def test_a_text_frame_that_is_not_utf8_gets_a_close_frame_with_1007(site, port, call):
    client = await join(port, call)

    await client.websocket.send(b'{"type": "ping", "note": "\xff"}', text=True)

    assert await close_code(client.websocket) == 1007
    assert "Traceback" not in site.log(port)


@pytest.mark.parametrize("size", [100 * KiB, MiB], ids=["100-KiB", "1-MiB"])
async def test_a_message_over_the_protocol_limit_gets_too_large_and_the_connection_goes_on(
    port, call, size
):
    client = await join(port, call)

    await client.websocket.send("x" * size)

    assert await client.receive_type("error") == TOO_LARGE
    await client.send({"type": "ping"})
    assert await client.receive_type("pong") == {"type": "pong"}
    await client.close()


# --- Addresses and origins -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers", "seen_as"),
    [
        ("/ws/nope/", {}, "/ws/nope/"),
        ("/ws/rooms/a%20b/", {}, "/ws/rooms/a b/"),
        ("/ws/rooms/standup/", {"Daphne-Root-Path": "/elsewhere"}, "/ws/rooms/standup/"),
    ],
    ids=["unknown", "not-a-slug", "outside-the-root-path"],
)
async def test_an_unknown_address_is_closed_with_4404_not_an_http_error(
    site, port, path, headers, seen_as
):
    websocket = await connect(
        f"ws://127.0.0.1:{port}{path}",
        origin=f"http://127.0.0.1:{port}",
        additional_headers=headers,
    )

    assert json.loads(await websocket.recv()) == {
        "type": "error",
        "code": "not-found",
        "message": "There is no call at this address.",
    }
    assert await close_code(websocket) == 4404
    log = site.log(port)
    assert "Traceback" not in log
    assert log.count(f"Websocket not found: {seen_as!r}") == 1


@pytest.mark.parametrize(
    ("origin", "close"),
    [
        ("https://127.0.0.1:{port}", 4404),  # let through to the address, which is unknown
        ("https://app.example.org", 4404),
        ("http://127.0.0.1:{port}", 4403),  # origin-not-allowed
        ("https://127.0.0.1:9999", 4403),
    ],
    ids=["own", "trusted", "http-page", "other-port"],
)
async def test_behind_a_tls_proxy_a_websocket_is_from_https_pages(port, origin, close):
    """daphne gives a websocket no scheme; the site takes it from X-Forwarded-Proto, as Django."""
    websocket = await connect(
        f"ws://127.0.0.1:{port}/ws/behind-the-proxy/",
        origin=origin.format(port=port),
        additional_headers={"X-Forwarded-Proto": "https"},
    )

    assert await close_code(websocket) == close
