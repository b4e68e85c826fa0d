import asyncio
import logging
import runpy

import pytest
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from conference.asgi import application as site_application
from conference.settings import redis_channel_layer
from conference.websocket import session_of, user_of, websocket_stack
from tests.conftest import BASE_DIR
from tests.factories import UserFactory

ORIGIN_NOT_ALLOWED = {
    "type": "error",
    "code": "origin-not-allowed",
    "message": "This page's origin may not open a call connection to this site.",
}
NOT_FOUND = {"type": "error", "code": "not-found", "message": "There is no call at this address."}


class WhoAmIConsumer(AsyncJsonWebsocketConsumer):
    """Answer with the session's user, and relay anything sent to the group "idle-test"."""

    async def connect(self):
        await self.channel_layer.group_add("idle-test", self.channel_name)
        await self.accept()
        user = await database_sync_to_async(lambda: user_of(session_of(self.scope)))()
        await self.send_json({"user": user.username if user.is_authenticated else None})

    async def disconnect(self, code):
        await self.channel_layer.group_discard("idle-test", self.channel_name)

    async def relay(self, event):
        await self.send_json({"relayed": event["text"]})


def connect(
    *,
    origin: bytes | None,
    host: bytes = b"localhost:8000",
    scheme: str | None = None,
    root_path: str | None = None,
    headers: tuple[tuple[bytes, bytes], ...] = (),
    cookie: bytes | None = None,
    path: str = "/ws/test/",
    application=None,
) -> WebsocketCommunicator:
    """
    Open a socket to `host` with these headers, through the site's websocket middleware in front
    of WhoAmIConsumer unless another application is given. `scheme` ("ws" or "wss") and
    `root_path` go into the scope; None leaves them out, as daphne leaves out the scheme.
    """
    inner = application or websocket_stack(WhoAmIConsumer.as_asgi())
    extra = {"scheme": scheme, "root_path": root_path}

    async def with_scope(scope, receive, send):
        scope = {**scope, **{key: value for key, value in extra.items() if value is not None}}
        return await inner(scope, receive, send)

    request_headers = [(b"host", host), *headers]
    if origin is not None:
        request_headers.append((b"origin", origin))
    if cookie is not None:
        request_headers.append((b"cookie", cookie))
    return WebsocketCommunicator(with_scope, path, headers=request_headers)


# --- Origins -------------------------------------------------------------------------------------

ENVIRONMENT = (
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "DJANGO_CSRF_TRUSTED_ORIGINS",
    "DJANGO_SECURE_PROXY_SSL_HEADER",
)
CONFIGURED = (
    "DEBUG",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "WEBSOCKET_ALLOWED_ORIGINS",
    "SECURE_PROXY_SSL_HEADER",
)


@pytest.fixture
def configure(settings, monkeypatch):
    """Set the settings the Origin check reads as conference/settings.py sets them from `env`."""

    def configure(env: dict[str, str]) -> None:
        for name in ENVIRONMENT:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("DJANGO_SECRET_KEY", "a-test-key-for-a-site-without-debug")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        configured = runpy.run_path(str(BASE_DIR / "conference" / "settings.py"))
        for name in CONFIGURED:
            setattr(settings, name, configured.get(name))  # SECURE_PROXY_SSL_HEADER: None if unset

    return configure


HTTPS_SITE = {"DJANGO_DEBUG": "false", "DJANGO_ALLOWED_HOSTS": "meet.example.com"}
BEHIND_A_TLS_PROXY = {**HTTPS_SITE, "DJANGO_SECURE_PROXY_SSL_HEADER": "true"}
WITH_TRUSTED_ORIGINS = {
    **HTTPS_SITE,
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://app.example.org,https://*.example.net",
}
ANY_HOST = {"DJANGO_DEBUG": "false", "DJANGO_ALLOWED_HOSTS": "*"}
DEVELOPMENT = {"DJANGO_DEBUG": "true"}  # ALLOWED_HOSTS: the settings' own localhost default
DEVELOPMENT_NO_HOSTS = {"DJANGO_DEBUG": "true", "DJANGO_ALLOWED_HOSTS": ""}  # Django's fallback

# The sockets: to https://meet.example.com over TLS; the same through a proxy that ends TLS and
# says so in X-Forwarded-Proto (daphne gives such a socket no scheme); to a development server.
TLS = {"scheme": "wss", "host": b"meet.example.com"}
PROXIED = {"host": b"meet.example.com", "headers": ((b"x-forwarded-proto", b"https"),)}
LOCAL = {"scheme": "ws", "host": b"127.0.0.1:8000"}


@pytest.mark.parametrize(
    ("env", "socket", "origin"),
    [
        pytest.param(HTTPS_SITE, TLS, b"http://meet.example.com", id="other-scheme"),
        pytest.param(HTTPS_SITE, TLS, b"https://meet.example.com:8443", id="other-port"),
        pytest.param(HTTPS_SITE, TLS, b"https://evil.example", id="other-host"),
        pytest.param(HTTPS_SITE, TLS, b"https://meet.example.com.evil.example", id="look-alike"),
        pytest.param(HTTPS_SITE, TLS, b"null", id="null"),
        pytest.param(HTTPS_SITE, TLS, None, id="missing"),
        pytest.param(
            HTTPS_SITE,
            {"scheme": "wss", "host": b"evil.example"},
            b"https://evil.example",
            id="host-not-allowed",
        ),
        pytest.param(ANY_HOST, TLS, b"https://evil.example", id="any-host-is-not-any-origin"),
        pytest.param(BEHIND_A_TLS_PROXY, PROXIED, b"http://meet.example.com", id="proxy-http"),
        pytest.param(HTTPS_SITE, PROXIED, b"https://meet.example.com", id="proxy-not-trusted"),
        pytest.param(WITH_TRUSTED_ORIGINS, TLS, b"http://eu.example.net", id="trusted-scheme"),
        pytest.param(WITH_TRUSTED_ORIGINS, TLS, b"https://eu.example.net:8443", id="trusted-port"),
        pytest.param(DEVELOPMENT, LOCAL, b"http://127.0.0.1:9999", id="development-other-port"),
        pytest.param(DEVELOPMENT_NO_HOSTS, LOCAL, b"http://127.0.0.1:9999", id="fallback-port"),
        pytest.param(DEVELOPMENT, LOCAL, b"https://127.0.0.1:8000", id="development-https"),
        pytest.param(DEVELOPMENT, LOCAL, b"http://localhost:8000", id="development-other-host"),
    ],
)
async def test_a_socket_from_another_origin_is_told_why_and_closed(configure, env, socket, origin):
    configure(env)
    communicator = connect(origin=origin, **socket)

    connected, _ = await communicator.connect()

    assert connected  # accepted so that the reason reaches the client
    assert await communicator.receive_json_from() == ORIGIN_NOT_ALLOWED
    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4403}


@pytest.mark.parametrize(
    ("env", "socket", "origin"),
    [
        pytest.param(HTTPS_SITE, TLS, b"https://meet.example.com", id="own"),
        pytest.param(BEHIND_A_TLS_PROXY, PROXIED, b"https://meet.example.com", id="own-proxied"),
        pytest.param(ANY_HOST, TLS, b"https://meet.example.com", id="own-any-host"),
        pytest.param(WITH_TRUSTED_ORIGINS, TLS, b"https://app.example.org", id="trusted"),
        pytest.param(WITH_TRUSTED_ORIGINS, TLS, b"https://eu.example.net", id="trusted-subdomain"),
        pytest.param(DEVELOPMENT, LOCAL, b"http://127.0.0.1:8000", id="development"),
        pytest.param(DEVELOPMENT_NO_HOSTS, LOCAL, b"http://127.0.0.1:8000", id="fallback"),
    ],
)
@pytest.mark.django_db(transaction=True)
async def test_a_socket_from_the_sites_own_or_a_trusted_origin_goes_through(
    configure, env, socket, origin
):
    configure(env)
    communicator = connect(origin=origin, **socket)

    connected, _ = await communicator.connect()

    assert connected
    assert await communicator.receive_json_from() == {"user": None}
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_socket_from_the_site_is_authenticated_by_the_django_session():
    user = await database_sync_to_async(UserFactory)(username="dana")
    client = Client()
    await database_sync_to_async(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    communicator = connect(origin=b"http://127.0.0.1:8000", host=b"127.0.0.1:8000", cookie=cookie)
    connected, _ = await communicator.connect()

    assert connected
    assert await communicator.receive_json_from() == {"user": "dana"}
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_socket_without_a_session_is_anonymous():
    communicator = connect(origin=b"http://localhost:8000")
    connected, _ = await communicator.connect()

    assert connected
    assert await communicator.receive_json_from() == {"user": None}
    await communicator.disconnect()


# --- Addresses -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "root_path", "seen_as"),
    [
        ("/ws/nope/", None, "/ws/nope/"),
        ("/ws/rooms/a%20b/", None, "/ws/rooms/a b/"),
        ("/ws/%0Aforged%20line/", None, "/ws/\nforged line/"),
        # daphne takes the root path from a Daphne-Root-Path header too, so any client sets it.
        ("/ws/rooms/standup/", "/elsewhere", "/ws/rooms/standup/"),
    ],
    ids=["unknown", "not-a-slug", "newline", "outside-the-root-path"],
)
async def test_an_address_that_is_no_endpoint_is_told_not_found_in_one_log_line(
    path, root_path, seen_as, caplog
):
    caplog.set_level(logging.INFO)
    communicator = connect(
        origin=b"http://localhost:8000",
        path=path,
        root_path=root_path,
        application=site_application,
    )

    connected, _ = await communicator.connect()

    assert connected
    assert await communicator.receive_json_from() == NOT_FOUND
    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4404}
    await communicator.wait()
    assert [(record.levelname, record.getMessage()) for record in caplog.records] == [
        ("WARNING", f"Websocket not found: {seen_as!r}")
    ]
    assert "\n" not in caplog.text.strip()
    assert not any(record.exc_info for record in caplog.records)


async def test_the_origin_is_checked_before_the_address(caplog):
    caplog.set_level(logging.INFO)
    communicator = connect(
        origin=b"https://evil.example", path="/ws/nope/", application=site_application
    )

    connected, _ = await communicator.connect()

    assert connected
    assert await communicator.receive_json_from() == ORIGIN_NOT_ALLOWED
    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4403}
    assert caplog.records == []


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
async def test_an_idle_socket_on_the_redis_layer_stays_open_for_a_minute(redis_server, settings):
    settings.CHANNEL_LAYERS = {"default": redis_channel_layer(redis_server.url, "idle-test")}
    communicator = connect(origin=b"http://localhost:8000")
    connected, _ = await communicator.connect()
    assert connected
    assert await communicator.receive_json_from() == {"user": None}

    await asyncio.sleep(60)

    assert not communicator.future.done(), "the consumer died while idle"
    await get_channel_layer().group_send("idle-test", {"type": "relay", "text": "still here"})
    assert await communicator.receive_json_from(timeout=5) == {"relayed": "still here"}
    await communicator.disconnect()
