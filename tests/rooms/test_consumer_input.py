"""Bad input on a live connection: an error reply, nothing relayed, the socket still usable."""

import json

import pytest
from asgiref.sync import async_to_sync
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import RoomFactory, UserFactory
from tests.rooms.signaling_helpers import Peer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def room(transactional_db):
    return RoomFactory(owner=UserFactory(username="olga"), access="members")


@pytest.fixture
def member(transactional_db):
    return UserFactory(username="mo")


def deep(levels: int) -> str:
    return '{"type": "state", "state": ' + "[" * levels + "]" * levels + "}"


BAD_INPUT = [
    ("not json", "bad-json"),
    ('{"type": "ping"', "bad-json"),
    ('{"type": "state", "state": {"audio": NaN}}', "bad-json"),
    ('{"type": "ping", "type": "signal"}', "bad-json"),
    (deep(100), "bad-json"),
    (deep(5000), "bad-json"),
    ("[1, 2, 3]", "not-an-object"),
    ('"ping"', "not-an-object"),
    ('{"type": "dance"}', "unknown-type"),
    ("{}", "missing-field"),
    ('{"type": "signal", "data": {"candidate": null}}', "missing-field"),
    ('{"type": "state"}', "missing-field"),
    (
        '{"type": "state", "state": {"audio": 1, "video": true, "screen": false, "hand": false}}',
        "wrong-type",
    ),
    ('{"type": 7}', "wrong-type"),
    ('{"type": "signal", "to": 12, "data": {"candidate": null}}', "wrong-type"),
    (
        '{"type": "signal", "to": "x", "data": {"description": {"type": "offer", "sdp": "'
        + "a" * (64 * 1024 + 1)
        + '"}}}',
        "too-large",
    ),
    (
        '{"type": "signal", "to": "x", "data": {"candidate": {"candidate": "'
        + "c" * (4 * 1024 + 1)
        + '"}}}',
        "too-large",
    ),
    (" " * (80 * 1024 + 1), "too-large"),
    ('{"type": "signal", "to": "../../x", "data": {"candidate": null}}', "bad-value"),
    (
        '{"type": "signal", "to": "x", "data": {"description": {"type": "hello", "sdp": "v=0"}}}',
        "bad-value",
    ),
    (b"\x00\x01binary", "binary-not-supported"),
]


@pytest.mark.parametrize(("frame", "code"), BAD_INPUT, ids=[code for _, code in BAD_INPUT])
async def test_bad_input_gets_an_error_and_reaches_nobody(room, member, frame, code):
    olga = await Peer.join(room.slug, user=room.owner)
    mo = await Peer.join(room.slug, user=member)
    await olga.drain()

    await mo.send(frame)

    error = await mo.receive()
    assert error["type"] == "error"
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert await olga.hears_nothing()
    assert await mo.still_answers()
    await mo.leave()
    await olga.leave()


async def test_a_flood_is_closed_with_4429(room, member):
    mo = await Peer.join(room.slug, user=member)

    for _ in range(400):
        await mo.send({"type": "ping"})
    messages = await mo.drain()

    assert messages[-1]["code"] == "rate-limited"
    assert messages[:-1] == [{"type": "pong"}] * (len(messages) - 1)
    assert 200 <= len(messages) - 1 < 400  # the burst passes, the flood does not
    assert mo.close_code == 4429


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
message_types = st.sampled_from(
    ["signal", "state", "ping", "admit", "deny", "kick", "mute", "lock", "end", "chat", "x"]
)
near_messages = st.builds(
    lambda kind, extra: json.dumps({"type": kind, **extra}),
    message_types,
    st.dictionaries(
        st.sampled_from(["to", "data", "state", "id", "locked", "from"]), json_values, max_size=3
    ),
)
frames = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    near_messages,
    st.binary(max_size=64),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(frames, min_size=50, max_size=120))
def test_generated_messages_never_break_the_connection(room, member, batch):
    """About two thousand generated frames: each gets an answer or nothing, never a crash."""

    async def run():
        olga = await Peer.join(room.slug, user=room.owner)
        mo = await Peer.join(room.slug, user=member)
        await olga.drain()
        for frame in batch:
            await mo.send(frame)
        replies = await mo.drain()
        assert all(reply["type"] in {"error", "pong", "room"} for reply in replies), replies
        assert await mo.still_answers()
        received = await olga.drain()
        # The participant is no host: nothing it sent may have ended, locked or left the call.
        assert all(message["type"] in {"signal", "peer-state"} for message in received)
        assert await olga.still_answers()
        await mo.leave()
        await olga.leave()

    async_to_sync(run)()
