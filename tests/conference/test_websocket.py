import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from conference.settings import redis_channel_layer
from conference.websocket import websocket_stack
from tests.factories import UserFactory


class WhoAmIConsumer(AsyncJsonWebsocketConsumer):
    """Answer with the session's user, and relay anything sent to the group "idle-test"."""

    async def connect(self):
        await self.channel_layer.group_add("idle-test", self.channel_name)
        await self.accept()
        user = self.scope["user"]
        await self.send_json({"user": user.username if user.is_authenticated else None})

    async def disconnect(self, code):
        await self.channel_layer.group_discard("idle-test", self.channel_name)

    async def relay(self, event):
        await self.send_json({"relayed": event["text"]})


application = websocket_stack(WhoAmIConsumer.as_asgi())


def connect(*, origin: bytes | None, cookie: bytes | None = None) -> WebsocketCommunicator:
    headers = []
    if origin is not None:
        headers.append((b"origin", origin))
    if cookie is not None:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, "/ws/test/", headers=headers)


@pytest.mark.parametrize(
    "origin",
    [b"http://evil.example", b"http://localhost.evil.example", b"null", None],
    ids=["other-site", "look-alike", "null", "missing"],
)
async def test_a_socket_from_another_origin_is_told_why_and_closed(origin):
    communicator = connect(origin=origin)

    connected, _ = await communicator.connect()

    assert connected  # accepted so that the reason reaches the client
    assert await communicator.receive_json_from() == {
        "type": "error",
        "code": "origin-not-allowed",
        "message": "This page's origin may not open a call connection to this site.",
    }
    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4403}


@pytest.mark.django_db(transaction=True)
async def test_a_socket_from_the_site_is_authenticated_by_the_django_session():
    user = await database_sync_to_async(UserFactory)(username="dana")
    client = Client()
    await database_sync_to_async(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    communicator = connect(origin=b"http://127.0.0.1:8000", cookie=cookie)
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
