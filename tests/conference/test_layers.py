"""
The in-process channel layer against the tests Channels runs on its own InMemoryChannelLayer
(tests/test_inmemorychannel.py and tests/test_layers.py of django/channels, ported), and the
properties the site relies on: costs that do not grow with the process, and no queue left behind
by a consumer that ended.
"""

import asyncio
import uuid

import pytest
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

from conference.layers import InProcessChannelLayer, RedisChannelLayer
from tests.conftest import RedisServer


@pytest.fixture(params=["in-process", "redis"])
async def make_layer(request):
    """Make a layer of either kind with this configuration, and close it after the test."""
    made = []

    def make(**config):
        if request.param == "redis":
            url = request.getfixturevalue("redis_server").url
            layer = RedisChannelLayer(hosts=[url], prefix=f"test-{uuid.uuid4().hex[:8]}", **config)
        else:
            layer = InProcessChannelLayer(**config)
        made.append(layer)
        return layer

    yield make
    for layer in made:
        await layer.close()


@pytest.fixture
async def channel_layer(make_layer):
    layer = make_layer(capacity=3)
    yield layer
    await layer.flush()
    await layer.close()


# --- Channels' own tests -----------------------------------------------------------------------


async def test_send_receive(channel_layer):
    await channel_layer.send("test-channel-1", {"type": "test.message", "text": "Ahoy-hoy!"})
    await channel_layer.send("test-channel-1", {"type": "test.message", "text": "Ahoy-hoy!"})
    message = await channel_layer.receive("test-channel-1")
    assert message == {"type": "test.message", "text": "Ahoy-hoy!"}
    assert "test-channel-1" in channel_layer.channels  # not removed because not empty
    message = await channel_layer.receive("test-channel-1")
    assert message == {"type": "test.message", "text": "Ahoy-hoy!"}
    assert "test-channel-1" not in channel_layer.channels  # removed because empty


async def test_race_empty(channel_layer):
    receive_task = asyncio.create_task(channel_layer.receive("test-channel-1"))
    await asyncio.sleep(0.1)
    await channel_layer.send("test-channel-1", {"type": "test.message", "text": "Ahoy-hoy!"})
    del channel_layer.channels["test-channel-1"]
    await asyncio.sleep(0.1)
    message = await receive_task
    assert message == {"type": "test.message", "text": "Ahoy-hoy!"}


async def test_send_capacity(channel_layer):
    for _ in range(3):
        await channel_layer.send("test-channel-1", {"type": "test.message"})
    with pytest.raises(ChannelFull):
        await channel_layer.send("test-channel-1", {"type": "test.message"})


async def test_process_local_send_receive(channel_layer):
    channel_name = await channel_layer.new_channel()
    await channel_layer.send(channel_name, {"type": "test.message", "text": "Local only please"})
    message = await channel_layer.receive(channel_name)
    assert message == {"type": "test.message", "text": "Local only please"}


async def test_multi_send_receive(channel_layer):
    for number in (1, 2, 3):
        await channel_layer.send("test-channel-3", {"type": f"message.{number}"})
    assert (await channel_layer.receive("test-channel-3"))["type"] == "message.1"
    assert (await channel_layer.receive("test-channel-3"))["type"] == "message.2"
    assert (await channel_layer.receive("test-channel-3"))["type"] == "message.3"


async def test_groups_basic(channel_layer):
    await channel_layer.group_add("test-group", "test-gr-chan-1")
    await channel_layer.group_add("test-group", "test-gr-chan-2")
    await channel_layer.group_add("test-group", "test-gr-chan-3")
    await channel_layer.group_discard("test-group", "test-gr-chan-2")
    await channel_layer.group_send("test-group", {"type": "message.1"})
    async with asyncio.timeout(1):
        assert (await channel_layer.receive("test-gr-chan-1"))["type"] == "message.1"
        assert (await channel_layer.receive("test-gr-chan-3"))["type"] == "message.1"
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1):
            await channel_layer.receive("test-gr-chan-2")


async def test_groups_channel_full(channel_layer):
    await channel_layer.group_add("test-group", "test-gr-chan-1")
    for _ in range(5):  # the fourth and fifth find the channel full: skipped, not raised
        await channel_layer.group_send("test-group", {"type": "message.1"})


async def test_expiry_single(make_layer):
    channel_layer = make_layer(expiry=0.1)
    await channel_layer.send("test-channel-1", {"type": "message.1"})
    assert len(channel_layer.channels) == 1

    await asyncio.sleep(0.1)

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await channel_layer.receive("test-channel-1")
    assert len(channel_layer.channels) == 0


async def test_expiry_unread(make_layer):
    channel_layer = make_layer(expiry=0.1)
    await channel_layer.send("test-channel-1", {"type": "message.1"})

    await asyncio.sleep(0.1)

    await channel_layer.send("test-channel-2", {"type": "message.2"})
    assert len(channel_layer.channels) == 2
    assert (await channel_layer.receive("test-channel-2"))["type"] == "message.2"
    assert len(channel_layer.channels) == 0


async def test_expiry_multi(make_layer):
    channel_layer = make_layer(expiry=0.1)
    for number in (1, 2, 3):
        await channel_layer.send("test-channel-1", {"type": f"message.{number}"})
    assert (await channel_layer.receive("test-channel-1"))["type"] == "message.1"

    await asyncio.sleep(0.1)
    await channel_layer.send("test-channel-1", {"type": "message.4"})
    assert (await channel_layer.receive("test-channel-1"))["type"] == "message.4"

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await channel_layer.receive("test-channel-1")
    assert len(channel_layer.channels) == 0


@pytest.mark.parametrize(
    ("name", "valid"), [("¯\\_(ツ)_/¯", False), ("chat", True), ("chat" * 100, False)]
)
async def test_channel_and_group_names_are_validated(channel_layer, name, valid):
    if valid:
        await channel_layer.group_add(name, name)
        return
    with pytest.raises(TypeError):
        await channel_layer.send(name, {"type": "message.1"})
    with pytest.raises(TypeError):
        await channel_layer.group_add(name, "chat")


def test_it_is_a_channels_layer():
    assert issubclass(InProcessChannelLayer, BaseChannelLayer)
    assert InProcessChannelLayer.extensions == ["groups", "flush"]


# --- What the site relies on -------------------------------------------------------------------


async def test_a_group_member_whose_message_expired_unread_leaves_its_groups(make_layer):
    channel_layer = make_layer(expiry=0.1)
    await channel_layer.group_add("room", "dead-channel")
    await channel_layer.group_add("room", "live-channel")
    await channel_layer.group_send("room", {"type": "message.1"})
    assert (await channel_layer.receive("live-channel"))["type"] == "message.1"

    await asyncio.sleep(0.1)
    await channel_layer.group_send("room", {"type": "message.2"})

    assert set(channel_layer.groups["room"]) == {"live-channel"}


async def test_a_receiver_that_is_cancelled_takes_its_queue_with_it(channel_layer):
    """A consumer that ended leaves nothing behind, whatever was sent to it."""
    name = await channel_layer.new_channel()
    waiting = asyncio.create_task(channel_layer.receive(name))
    await asyncio.sleep(0)

    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting

    assert channel_layer.channels == {}


async def test_a_message_handed_over_as_its_receiver_is_cancelled_is_not_lost(channel_layer):
    first = asyncio.create_task(channel_layer.receive("shared"))
    second = asyncio.create_task(channel_layer.receive("shared"))
    await asyncio.sleep(0)

    await channel_layer.send("shared", {"type": "message.1"})  # goes to the first receiver
    first.cancel()

    with pytest.raises(asyncio.CancelledError):
        await first
    await channel_layer.send("shared", {"type": "message.2"})
    assert (await second)["type"] == "message.1"
    assert (await channel_layer.receive("shared"))["type"] == "message.2"


async def test_sending_costs_the_same_however_many_channels_and_groups_exist():
    """Nothing walks the process: the other channels and groups are never touched."""
    channel_layer = InProcessChannelLayer(capacity=100)  # the Redis layer builds on it
    for number in range(5000):
        await channel_layer.group_add(f"room.{number}", f"channel-{number}")
        await channel_layer.send(f"channel-{number}", {"type": "message.0"})
    before = {name: list(queue.messages) for name, queue in channel_layer.channels.items()}

    await channel_layer.group_send("room.7", {"type": "message.1"})
    await channel_layer.send("channel-9", {"type": "message.2"})
    assert (await channel_layer.receive("channel-9"))["type"] == "message.0"

    changed = [
        name
        for name, queue in channel_layer.channels.items()
        if list(queue.messages) != before.get(name)
    ]
    assert sorted(changed) == ["channel-7", "channel-9"]


async def test_a_message_is_handed_over_not_copied(channel_layer):
    message = {"type": "message.1", "data": {"sdp": "v=0"}}
    await channel_layer.send("channel", message)

    assert await channel_layer.receive("channel") is message


# --- Between processes -------------------------------------------------------------------------


@pytest.fixture
async def two_processes(redis_server):
    """Two layers on one Redis, as two daphne processes have."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    layers = [RedisChannelLayer(hosts=[redis_server.url], prefix=prefix) for _ in range(2)]
    yield layers
    for layer in layers:
        await layer.close()


async def receive(layer, channel, timeout=2):
    async with asyncio.timeout(timeout):
        return await layer.receive(channel)


async def test_a_message_reaches_a_channel_of_another_process_in_order(two_processes):
    here, there = two_processes
    channel = await there.new_channel()
    waiting = asyncio.create_task(receive(there, channel))
    await asyncio.sleep(0.05)

    for number in range(50):
        await here.send(channel, {"type": "message", "number": number})

    numbers = [(await waiting)["number"]]
    numbers += [(await receive(there, channel))["number"] for _ in range(49)]
    assert numbers == list(range(50))
    assert here.owner(channel) == there.process != here.process


async def test_a_group_message_reaches_members_in_every_process_once(two_processes):
    here, there = two_processes
    near, far = await here.new_channel(), await there.new_channel()
    await here.group_add("room", near)
    await there.group_add("room", far)
    await asyncio.sleep(0.05)  # the subscription reaches Redis

    await here.group_send("room", {"type": "message.1"})

    assert (await receive(here, near))["type"] == "message.1"
    assert (await receive(there, far))["type"] == "message.1"
    with pytest.raises(TimeoutError):
        await receive(here, near, timeout=0.3)  # not a second time, through Redis
    await there.group_discard("room", far)
    await asyncio.sleep(0.05)
    await here.group_send("room", {"type": "message.2"})
    assert (await receive(here, near))["type"] == "message.2"
    with pytest.raises(TimeoutError):
        await receive(there, far, timeout=0.3)


async def test_a_message_for_a_channel_that_has_gone_is_not_kept(two_processes):
    here, there = two_processes
    channel = await there.new_channel()

    await here.send(channel, {"type": "message.1"})  # nobody ever received on it
    await asyncio.sleep(0.1)

    assert channel not in there.channels


async def test_messages_flow_again_after_redis_restarts():
    server = RedisServer()
    server.start()
    try:
        prefix = f"test-{uuid.uuid4().hex[:8]}"
        here, there = (RedisChannelLayer(hosts=[server.url], prefix=prefix) for _ in range(2))
        channel = await there.new_channel()
        await there.group_add("room", channel)
        waiting = asyncio.create_task(receive(there, channel, timeout=15))

        server.stop()
        await asyncio.sleep(0.5)
        server.start()
        await asyncio.sleep(1.5)  # the subscriber connects and subscribes again

        await here.send(channel, {"type": "message.1"})
        await here.group_send("room", {"type": "message.2"})
        assert (await waiting)["type"] == "message.1"
        assert (await receive(there, channel))["type"] == "message.2"
        await here.close()
        await there.close()
    finally:
        server.stop()
