import json
import re

import pytest
from django.utils.translation import gettext_lazy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rooms import signaling
from rooms.signaling import ClientMessage, ProtocolError, RateLimiter, parse_client_message

OFFER_SDP = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
CANDIDATE = "candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 0.0.0.0 rport 0"

ERROR_CODES = {
    signaling.BAD_JSON,
    signaling.NOT_AN_OBJECT,
    signaling.UNKNOWN_TYPE,
    signaling.MISSING_FIELD,
    signaling.WRONG_TYPE,
    signaling.TOO_LARGE,
    signaling.BAD_VALUE,
}


def frame(**message) -> str:
    return json.dumps(message)


def nested_list(depth: int) -> str:
    """Return a frame whose ignored field holds arrays nested so the whole is ``depth`` deep."""
    return '{"type": "ping", "x": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


def refusal(text: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        parse_client_message(text)
    return caught.value


# --- What parses, and to exactly what ----------------------------------------------------------

VALID = [
    pytest.param(frame(type="ping"), ClientMessage("ping", {}), id="ping"),
    pytest.param(frame(type="ping", extra=[1, 2]), ClientMessage("ping", {}), id="ping-extra"),
    pytest.param(frame(type="end"), ClientMessage("end", {}), id="end"),
    pytest.param(
        frame(
            type="state",
            state={"audio": False, "video": True, "screen": True, "hand": False, "x": 1},
        ),
        ClientMessage(
            "state", {"state": {"audio": False, "video": True, "screen": True, "hand": False}}
        ),
        id="state",
    ),
    pytest.param(
        frame(type="admit", id="abc-DEF_123"), ClientMessage("admit", {"id": "abc-DEF_123"})
    ),
    pytest.param(frame(type="deny", id="p1"), ClientMessage("deny", {"id": "p1"})),
    pytest.param(frame(type="kick", id="p1", reason="x"), ClientMessage("kick", {"id": "p1"})),
    pytest.param(frame(type="mute", id="p1"), ClientMessage("mute", {"id": "p1"})),
    pytest.param(frame(type="lock", locked=True), ClientMessage("lock", {"locked": True})),
    pytest.param(frame(type="lock", locked=False), ClientMessage("lock", {"locked": False})),
    pytest.param(
        frame(
            type="signal",
            to="peer-1",
            data={"description": {"type": "offer", "sdp": OFFER_SDP, "x": "y"}, "extra": 1},
            **{"from": "forged"},
        ),
        ClientMessage(
            "signal", {"to": "peer-1", "data": {"description": {"type": "offer", "sdp": OFFER_SDP}}}
        ),
        id="offer-extra-keys-dropped",
    ),
    pytest.param(
        frame(type="signal", to="p", data={"description": {"type": "answer", "sdp": "v=0"}}),
        ClientMessage(
            "signal", {"to": "p", "data": {"description": {"type": "answer", "sdp": "v=0"}}}
        ),
        id="answer",
    ),
    pytest.param(
        frame(type="signal", to="p", data={"description": {"type": "pranswer", "sdp": "v=0"}}),
        ClientMessage(
            "signal", {"to": "p", "data": {"description": {"type": "pranswer", "sdp": "v=0"}}}
        ),
        id="pranswer",
    ),
    pytest.param(
        frame(type="signal", to="p", data={"description": {"type": "rollback"}}),
        ClientMessage(
            "signal", {"to": "p", "data": {"description": {"type": "rollback", "sdp": ""}}}
        ),
        id="rollback-without-sdp",
    ),
    pytest.param(
        frame(type="signal", to="p", data={"description": {"type": "rollback", "sdp": ""}}),
        ClientMessage(
            "signal", {"to": "p", "data": {"description": {"type": "rollback", "sdp": ""}}}
        ),
        id="rollback-empty-sdp",
    ),
    pytest.param(
        frame(
            type="signal",
            to="p",
            data={
                "candidate": {
                    "candidate": CANDIDATE,
                    "sdpMid": "0",
                    "sdpMLineIndex": 0,
                    "usernameFragment": "EsJ3",
                    "relayProtocol": "udp",
                    "url": "stun:stun.example.com",
                }
            },
        ),
        ClientMessage(
            "signal",
            {
                "to": "p",
                "data": {
                    "candidate": {
                        "candidate": CANDIDATE,
                        "sdpMid": "0",
                        "sdpMLineIndex": 0,
                        "usernameFragment": "EsJ3",
                    }
                },
            },
        ),
        id="candidate-unknown-keys-dropped",
    ),
    pytest.param(
        frame(type="signal", to="p", data={"candidate": {"candidate": CANDIDATE}}),
        ClientMessage("signal", {"to": "p", "data": {"candidate": {"candidate": CANDIDATE}}}),
        id="candidate-optional-keys-absent",
    ),
    pytest.param(
        frame(
            type="signal",
            to="p",
            data={
                "candidate": {
                    "candidate": "",
                    "sdpMid": None,
                    "sdpMLineIndex": None,
                    "usernameFragment": None,
                }
            },
        ),
        ClientMessage(
            "signal",
            {
                "to": "p",
                "data": {
                    "candidate": {
                        "candidate": "",
                        "sdpMid": None,
                        "sdpMLineIndex": None,
                        "usernameFragment": None,
                    }
                },
            },
        ),
        id="candidate-nulls",
    ),
    pytest.param(
        frame(type="signal", to="p", data={"candidate": {"candidate": "", "sdpMLineIndex": 65535}}),
        ClientMessage(
            "signal", {"to": "p", "data": {"candidate": {"candidate": "", "sdpMLineIndex": 65535}}}
        ),
        id="largest-m-line-index",
    ),
    pytest.param(
        frame(type="signal", to="p", data={"candidate": None}),
        ClientMessage("signal", {"to": "p", "data": {"candidate": None}}),
        id="end-of-candidates",
    ),
    pytest.param(
        '  \n{"type" : "ping"}\t ',
        ClientMessage("ping", {}),
        id="surrounding-whitespace",
    ),
]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_valid_message_parses_to_exactly_its_validated_fields(text, expected):
    assert parse_client_message(text) == expected


def test_limits_are_inclusive():
    longest_id = "a" * 64
    sdp = "v" * 65536
    candidate = "é" * 2048  # 4096 bytes in UTF-8

    assert parse_client_message(frame(type="kick", id=longest_id)).fields == {"id": longest_id}
    offer = frame(type="signal", to="p", data={"description": {"type": "offer", "sdp": sdp}})
    assert parse_client_message(offer).fields["data"]["description"]["sdp"] == sdp
    ice = frame(type="signal", to="p", data={"candidate": {"candidate": candidate}})
    assert parse_client_message(ice).fields["data"]["candidate"]["candidate"] == candidate
    assert parse_client_message(nested_list(32)) == ClientMessage("ping", {})


def test_depth_counts_nesting_not_brackets():
    siblings = '{"type": "ping", "x": [' + "[], " * 40 + "[]]}"
    in_a_string = frame(type="ping", x="[" * 40)

    assert parse_client_message(siblings) == ClientMessage("ping", {})
    assert parse_client_message(in_a_string) == ClientMessage("ping", {})


def test_frame_of_exactly_the_limit_is_read():
    text = frame(type="ping", pad="")
    text = frame(type="ping", pad="x" * (signaling.MAX_FRAME_BYTES - len(text)))
    assert len(text) == signaling.MAX_FRAME_BYTES

    assert parse_client_message(text) == ClientMessage("ping", {})


def test_relayed_data_is_a_new_object_not_the_clients():
    message = parse_client_message(frame(type="signal", to="p", data={"candidate": None}))
    again = parse_client_message(frame(type="signal", to="p", data={"candidate": None}))

    message.fields["data"]["candidate"] = "changed"
    assert again.fields["data"] == {"candidate": None}


# --- What is refused, and with which code -------------------------------------------------------

too_large_frame = frame(type="ping", pad="x" * signaling.MAX_FRAME_BYTES)
# Under the limit in characters, over it in UTF-8 bytes.
too_large_in_bytes = frame(type="ping", pad="é" * (signaling.MAX_FRAME_BYTES // 2 + 1))


def signal_with(data) -> str:
    return frame(type="signal", to="p", data=data)


def description(**fields) -> str:
    return signal_with({"description": fields})


def candidate(**fields) -> str:
    return signal_with({"candidate": fields})


def state(**changes) -> str:
    return frame(
        type="state", state={"audio": True, "video": True, "screen": False, "hand": False} | changes
    )


INVALID = [
    # Not JSON, or JSON the server does not take.
    ("", "bad-json"),
    ("{", "bad-json"),
    ("ping", "bad-json"),
    ("{'type': 'ping'}", "bad-json"),
    ('{"type": "ping"} {"type": "ping"}', "bad-json"),
    ('{"type": "ping", "x": NaN}', "bad-json"),
    ('{"type": "ping", "x": Infinity}', "bad-json"),
    ('{"type": "ping", "x": -Infinity}', "bad-json"),
    ('{"type": "ping", "type": "ping"}', "bad-json"),
    ('{"type": "ping", "x": [{"a": 1, "a": 1}]}', "bad-json"),
    ('{"type": "ping", "x": ' + "9" * 5000 + "}", "bad-json"),
    (nested_list(33), "bad-json"),
    ('{"type": "ping", "x": ' + '{"a": ' * 32 + "1" + "}" * 33, "bad-json"),
    ("[" * 50000 + "]" * 10000, "bad-json"),  # deep enough to exhaust the decoder's recursion
    ('{"type": "ping", "x": ' + '{"a":' * 10000 + "1" + "}" * 10001, "bad-json"),
    # JSON, but not an object.
    ("[]", "not-an-object"),
    ('["ping"]', "not-an-object"),
    ('"ping"', "not-an-object"),
    ("1", "not-an-object"),
    ("null", "not-an-object"),
    ("true", "not-an-object"),
    # The type.
    ("{}", "missing-field"),
    ('{"type": null}', "wrong-type"),
    ('{"type": ["ping"]}', "wrong-type"),
    ('{"type": {"ping": 1}}', "wrong-type"),
    ('{"type": "PING"}', "unknown-type"),
    ('{"type": "welcome"}', "unknown-type"),
    ('{"type": "peer.joined"}', "unknown-type"),
    ('{"type": "websocket.disconnect"}', "unknown-type"),
    ('{"type": "__class__"}', "unknown-type"),
    ('{"type": ""}', "unknown-type"),
    # Sizes, checked before parsing.
    (too_large_frame, "too-large"),
    (too_large_in_bytes, "too-large"),
    ("x" * (signaling.MAX_FRAME_BYTES + 1), "too-large"),
    # signal: the addressee.
    (frame(type="signal", data={"candidate": None}), "missing-field"),
    (frame(type="signal", to=7, data={"candidate": None}), "wrong-type"),
    (frame(type="signal", to=None, data={"candidate": None}), "wrong-type"),
    (frame(type="signal", to="", data={"candidate": None}), "bad-value"),
    (frame(type="signal", to="a" * 65, data={"candidate": None}), "bad-value"),
    (frame(type="signal", to="a b", data={"candidate": None}), "bad-value"),
    (frame(type="signal", to="peer\n", data={"candidate": None}), "bad-value"),
    (frame(type="signal", to="pé", data={"candidate": None}), "bad-value"),
    (frame(type="signal", to="p.q", data={"candidate": None}), "bad-value"),
    # signal: data.
    (frame(type="signal", to="p"), "missing-field"),
    (signal_with(None), "wrong-type"),
    (signal_with([]), "wrong-type"),
    (signal_with("offer"), "wrong-type"),
    (signal_with({}), "missing-field"),
    (signal_with({"sdp": "v=0"}), "missing-field"),
    (signal_with({"description": {"type": "offer", "sdp": "v=0"}, "candidate": None}), "bad-value"),
    # signal: a description.
    (signal_with({"description": None}), "wrong-type"),
    (signal_with({"description": "v=0"}), "wrong-type"),
    (description(sdp="v=0"), "missing-field"),
    (description(type=None, sdp="v=0"), "wrong-type"),
    (description(type=1, sdp="v=0"), "wrong-type"),
    (description(type="Offer", sdp="v=0"), "bad-value"),
    (description(type="candidate", sdp="v=0"), "bad-value"),
    (description(type="offer"), "missing-field"),
    (description(type="answer"), "missing-field"),
    (description(type="offer", sdp=None), "wrong-type"),
    (description(type="rollback", sdp=None), "wrong-type"),
    (description(type="offer", sdp=["v=0"]), "wrong-type"),
    (description(type="offer", sdp=""), "bad-value"),
    (description(type="pranswer", sdp=""), "bad-value"),
    (description(type="offer", sdp="\ud800"), "bad-value"),
    (description(type="offer", sdp="v" * 65537), "too-large"),
    (description(type="offer", sdp="é" * 32769), "too-large"),  # 65538 bytes in 32769 characters
    # signal: a candidate.
    (signal_with({"candidate": CANDIDATE}), "wrong-type"),
    (signal_with({"candidate": []}), "wrong-type"),
    (candidate(sdpMid="0", sdpMLineIndex=0), "missing-field"),
    (candidate(candidate=None), "wrong-type"),
    (candidate(candidate=5), "wrong-type"),
    (candidate(candidate="x" * 4097), "too-large"),
    (candidate(candidate="é" * 2049), "too-large"),
    (candidate(candidate="\udc00"), "bad-value"),
    (candidate(candidate="", sdpMid=0), "wrong-type"),
    (candidate(candidate="", sdpMid="x" * 4097), "too-large"),
    (candidate(candidate="", usernameFragment=False), "wrong-type"),
    (candidate(candidate="", usernameFragment="\ud83d"), "bad-value"),
    (candidate(candidate="", sdpMLineIndex="0"), "wrong-type"),
    (candidate(candidate="", sdpMLineIndex=True), "wrong-type"),
    (candidate(candidate="", sdpMLineIndex=0.0), "wrong-type"),
    (candidate(candidate="", sdpMLineIndex=-1), "bad-value"),
    (candidate(candidate="", sdpMLineIndex=65536), "bad-value"),
    (candidate(candidate="", sdpMLineIndex=2**70), "bad-value"),
    # state
    (frame(type="state"), "missing-field"),
    (frame(type="state", state=None), "wrong-type"),
    (frame(type="state", state=[True, True, False, False]), "wrong-type"),
    (frame(type="state", state={"audio": True, "video": True, "screen": False}), "missing-field"),
    (state(audio=1), "wrong-type"),
    (state(video=0), "wrong-type"),
    (state(screen="false"), "wrong-type"),
    (state(hand=None), "wrong-type"),
    # Host actions.
    (frame(type="admit"), "missing-field"),
    (frame(type="deny", id=None), "wrong-type"),
    (frame(type="kick", id=12), "wrong-type"),
    (frame(type="mute", id="not an id"), "bad-value"),
    (frame(type="admit", id=""), "bad-value"),
    (frame(type="lock"), "missing-field"),
    (frame(type="lock", locked=1), "wrong-type"),
    (frame(type="lock", locked="true"), "wrong-type"),
    (frame(type="lock", locked=None), "wrong-type"),
]


@pytest.mark.parametrize(("text", "code"), INVALID, ids=lambda value: repr(value)[:60])
def test_invalid_message_is_refused_with_its_code(text, code):
    error = refusal(text)

    assert error.code == code
    assert isinstance(error.message, str)
    assert error.message


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("{}", "type", "is missing"),
        (frame(type="signal", data={"candidate": None}), "to", "is missing"),
        (frame(type="state", state={"audio": True}), "state.video", "is missing"),
        (description(type="offer"), "data.description.sdp", "is missing"),
        (candidate(sdpMid="0"), "data.candidate.candidate", "is missing"),
        (frame(type="lock", locked=1), "locked", "must be true or false"),
        (state(hand=None), "state.hand", "must be true or false"),
        (frame(type="kick", id=3), "id", "must be a string"),
        (signal_with([]), "data", "must be an object"),
        (signal_with({"candidate": 1}), "data.candidate", "must be an object or null"),
        (candidate(candidate="", sdpMid=0), "data.candidate.sdpMid", "must be a string or null"),
        (
            candidate(candidate="", sdpMLineIndex="0"),
            "data.candidate.sdpMLineIndex",
            "must be an integer or null",
        ),
    ],
)
def test_missing_and_wrong_type_errors_name_the_field_and_what_it_needs(text, field, words):
    message = refusal(text).message

    assert f"“{field}”" in message
    assert words in message


def test_missing_signal_payload_names_both_choices():
    message = refusal(signal_with({})).message

    assert "“data.description”" in message
    assert "“data.candidate”" in message


def test_size_is_checked_before_parsing():
    # Invalid JSON, but too large: the size decides, so the decoder never ran.
    assert refusal("{" * (signaling.MAX_FRAME_BYTES + 1)).code == "too-large"


def test_protocol_error_carries_code_and_message():
    error = ProtocolError("bad-value", "Nope.")

    assert (error.code, error.message) == ("bad-value", "Nope.")
    assert str(error) == "bad-value: Nope."


# --- Any input at all: a known message or a ProtocolError ---------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
peer_ids = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True) | st.text(max_size=70)
# Frames shaped like real messages, with every field drawn from a mix of right and wrong values,
# so that the generator reaches deep into each parser instead of stopping at the type.
near_messages = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(signaling.CLIENT_MESSAGE_TYPES)) | st.text(max_size=8)},
    optional={
        "to": peer_ids | json_values,
        "id": peer_ids | json_values,
        "locked": st.booleans() | json_values,
        "state": st.fixed_dictionaries(
            {},
            optional={key: st.booleans() | json_values for key in signaling.STATE_KEYS},
        )
        | json_values,
        "data": st.fixed_dictionaries(
            {},
            optional={
                "description": st.fixed_dictionaries(
                    {},
                    optional={
                        "type": st.sampled_from(signaling.DESCRIPTION_TYPES) | json_values,
                        "sdp": st.text() | json_values,
                    },
                )
                | json_values,
                "candidate": st.none()
                | st.fixed_dictionaries(
                    {},
                    optional={
                        "candidate": st.text() | json_values,
                        "sdpMid": st.none() | st.text(max_size=3) | json_values,
                        "sdpMLineIndex": st.none() | st.integers(-2, 70000) | json_values,
                        "usernameFragment": st.none() | st.text(max_size=8) | json_values,
                        "extra": json_values,
                    },
                )
                | json_values,
            },
        )
        | json_values,
    },
)


def assert_known_outcome(text: str) -> None:
    try:
        message = parse_client_message(text)
    except ProtocolError as error:
        assert error.code in ERROR_CODES
        assert isinstance(error.message, str)
        assert error.message
        return
    assert isinstance(message, ClientMessage)
    assert message.type in signaling.CLIENT_MESSAGE_TYPES
    # What the server accepted and may relay is itself a valid message, carrying the same fields,
    # and is encodable as UTF-8 (as msgpack in the Redis channel layer needs).
    again = json.dumps(
        {"type": message.type, **message.fields}, ensure_ascii=False, separators=(",", ":")
    )
    again.encode("utf-8")
    assert parse_client_message(again) == message


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values | near_messages)
def test_any_json_value_parses_to_a_known_message_or_a_protocol_error(value):
    assert_known_outcome(json.dumps(value))


@settings(max_examples=2000, deadline=None)
@given(st.text() | st.text(alphabet='{}[]":,0123456789.-truefalsnNIiy \\u', max_size=60))
def test_any_text_parses_to_a_known_message_or_a_protocol_error(text):
    assert_known_outcome(text)


peer_id = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
valid_candidates = st.none() | st.fixed_dictionaries(
    {"candidate": st.text(max_size=200)},
    optional={
        "sdpMid": st.none() | st.text(max_size=4),
        "sdpMLineIndex": st.none() | st.integers(0, 65535),
        "usernameFragment": st.none() | st.text(max_size=8),
    },
)
valid_messages = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["ping", "end"])}),
    st.fixed_dictionaries(
        {
            "type": st.just("state"),
            "state": st.fixed_dictionaries({key: st.booleans() for key in signaling.STATE_KEYS}),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["admit", "deny", "kick", "mute"]), "id": peer_id}
    ),
    st.fixed_dictionaries({"type": st.just("lock"), "locked": st.booleans()}),
    st.fixed_dictionaries(
        {
            "type": st.just("signal"),
            "to": peer_id,
            "data": st.fixed_dictionaries(
                {
                    "description": st.fixed_dictionaries(
                        {
                            "type": st.sampled_from(["offer", "answer", "pranswer"]),
                            "sdp": st.text(min_size=1),
                        }
                    )
                    | st.fixed_dictionaries({"type": st.just("rollback"), "sdp": st.text()})
                }
            )
            | st.fixed_dictionaries({"candidate": valid_candidates}),
        }
    ),
)


@settings(max_examples=1000, deadline=None)
@given(valid_messages)
def test_any_valid_message_parses_to_exactly_its_fields(value):
    message = parse_client_message(json.dumps(value))

    assert message.type == value["type"]
    assert message.fields == {key: field for key, field in value.items() if key != "type"}


# --- Server to client ---------------------------------------------------------------------------

ALICE = {
    "id": "alice-id",
    "name": "Alice",
    "role": "host",
    "state": {"audio": True, "video": False, "screen": False, "hand": True},
    "channel": "specific.secret!channel",
    "user_id": 7,
    "instance": "a1b2c3d4e5f60718",
}
BOB = {
    "id": "bob-id",
    "name": "Bob",
    "role": "participant",
    "state": {"audio": False, "video": False, "screen": True, "hand": False},
    "instance": "0f1e2d3c4b5a6978",
}


def test_welcome():
    ice = [{"urls": ["stun:stun.example.com:3478"]}]
    room = {"slug": "standup", "name": "Stand-up", "locked": False, "owner_id": 3}

    message = signaling.welcome(self_peer=BOB, peers=[ALICE], ice_servers=ice, room=room)

    assert message == {
        "type": "welcome",
        "protocol": 1,
        "self": {
            "id": "bob-id",
            "name": "Bob",
            "role": "participant",
            "instance": "0f1e2d3c4b5a6978",
        },
        "peers": [
            {
                "id": "alice-id",
                "name": "Alice",
                "role": "host",
                "state": {"audio": True, "video": False, "screen": False, "hand": True},
                "instance": "a1b2c3d4e5f60718",
            }
        ],
        "iceServers": [{"urls": ["stun:stun.example.com:3478"]}],
        "room": {"slug": "standup", "name": "Stand-up", "locked": False},
    }


def test_welcome_to_an_empty_room():
    room = {"slug": "r", "name": "R", "locked": True}

    message = signaling.welcome(self_peer=ALICE, peers=iter(()), ice_servers=[], room=room)

    assert message["peers"] == []
    assert message["iceServers"] == []
    assert message["room"] == {"slug": "r", "name": "R", "locked": True}
    assert message["self"] == {
        "id": "alice-id",
        "name": "Alice",
        "role": "host",
        "instance": "a1b2c3d4e5f60718",
    }


def test_lobby():
    message = signaling.lobby()

    assert set(message) == {"type", "message"}
    assert message["type"] == "lobby"
    assert isinstance(message["message"], str)
    assert message["message"]


def test_presence_builders():
    assert signaling.knock(peer=ALICE) == {
        "type": "knock",
        "peer": {"id": "alice-id", "name": "Alice"},
    }
    assert signaling.lobby_left("alice-id") == {"type": "lobby-left", "id": "alice-id"}
    assert signaling.peer_joined(BOB) == {
        "type": "peer-joined",
        "peer": {
            "id": "bob-id",
            "name": "Bob",
            "role": "participant",
            "state": {"audio": False, "video": False, "screen": True, "hand": False},
            "instance": "0f1e2d3c4b5a6978",
        },
    }
    assert signaling.peer_left("bob-id") == {"type": "peer-left", "id": "bob-id", "reason": "left"}
    assert signaling.peer_left("bob-id", signaling.LOST)["reason"] == "lost"
    assert signaling.peer_state(
        "bob-id", {"audio": True, "video": False, "screen": False, "hand": True, "x": 1}
    ) == {
        "type": "peer-state",
        "id": "bob-id",
        "state": {"audio": True, "video": False, "screen": False, "hand": True},
    }


def test_signal_relays_the_parsed_data_from_the_sender():
    parsed = parse_client_message(
        frame(type="signal", to="bob-id", data={"description": {"type": "offer", "sdp": "v=0"}})
    )

    message = signaling.signal(sender="alice-id", data=parsed.fields["data"])

    assert message == {
        "type": "signal",
        "from": "alice-id",
        "data": {"description": {"type": "offer", "sdp": "v=0"}},
    }


def test_pong_mute_request_and_room_state():
    assert signaling.pong() == {"type": "pong"}
    assert signaling.mute_request(by=ALICE) == {
        "type": "mute-request",
        "by": {"id": "alice-id", "name": "Alice"},
    }
    assert signaling.room_state(locked=True) == {"type": "room", "room": {"locked": True}}
    assert signaling.room_state(locked=False) == {"type": "room", "room": {"locked": False}}


def test_error_message_with_extra_fields():
    message = signaling.error_message("too-early", "Not yet.", opensAt="2030-01-01T09:50:00+00:00")

    assert message == {
        "type": "error",
        "code": "too-early",
        "message": "Not yet.",
        "opensAt": "2030-01-01T09:50:00+00:00",
    }


def test_error_message_turns_a_lazy_translation_into_a_string():
    message = signaling.error_message("bad-json", gettext_lazy("The message is not valid JSON."))

    assert type(message["message"]) is str
    assert json.dumps(message)


def test_error_from_a_protocol_error():
    error = refusal("[]")

    assert signaling.error_message(error.code, error.message) == {
        "type": "error",
        "code": "not-an-object",
        "message": "The message must be a JSON object.",
    }


def test_ended_says_who_ended_the_call_before_close_4410():
    assert signaling.CLOSE_CODES[signaling.ENDED] == signaling.CLOSE_ENDED == 4410
    assert signaling.ended_message() == "A host ended the call for everyone."
    assert signaling.ended_message(by_you=True) == "You ended the call for everyone."
    assert signaling.closing_error(signaling.ENDED)["message"] == signaling.ended_message()


def test_a_role_change_names_the_peer_and_its_new_role():
    assert signaling.peer_role("bob-id", "cohost") == {
        "type": "peer-role",
        "id": "bob-id",
        "role": "cohost",
    }


@pytest.mark.parametrize(
    ("code", "close_code"),
    [
        ("not-signed-in", 4401),
        ("not-allowed", 4403),
        ("origin-not-allowed", 4403),
        ("kicked", 4403),
        ("denied", 4403),
        ("no-such-room", 4404),
        ("room-full", 4409),
        ("ended", 4410),
        ("meeting-over", 4410),
        ("locked", 4423),
        ("too-early", 4425),
        ("rate-limited", 4429),
        ("timed-out", 4408),
        ("not-found", 4404),
        ("replaced", 4412),
        ("unavailable", 1013),
    ],
)
def test_closing_error_and_its_close_code(code, close_code):
    message = signaling.closing_error(code)

    assert signaling.CLOSE_CODES[code] == close_code
    assert message["type"] == "error"
    assert message["code"] == code
    assert isinstance(message["message"], str)
    assert message["message"]


def test_every_close_reason_has_a_code_and_nothing_else_does():
    assert set(signaling.CLOSE_CODES) == {
        "not-signed-in",
        "not-allowed",
        "origin-not-allowed",
        "kicked",
        "denied",
        "no-such-room",
        "room-full",
        "ended",
        "meeting-over",
        "locked",
        "too-early",
        "rate-limited",
        "timed-out",
        "not-found",
        "replaced",
        "unavailable",
        "protocol-unsupported",
    }


def test_closing_error_for_too_early_carries_opens_at():
    message = signaling.closing_error("too-early", opensAt="2030-01-01T09:50:00+00:00")

    assert message["opensAt"] == "2030-01-01T09:50:00+00:00"
    assert message["code"] == "too-early"


def test_origin_refusal_says_what_the_websocket_middleware_says():
    message = signaling.closing_error("origin-not-allowed")

    assert message["message"] == "This page's origin may not open a call connection to this site."


def test_binary_frames_have_a_code_of_their_own():
    assert signaling.BINARY_NOT_SUPPORTED == "binary-not-supported"


# --- Peers --------------------------------------------------------------------------------------


def test_new_peer_ids_are_unguessable_and_fit_the_alphabet():
    ids = {signaling.new_peer_id() for _ in range(1000)}

    assert len(ids) == 1000
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{12}", peer_id) for peer_id in ids)
    peer_id = ids.pop()
    assert parse_client_message(frame(type="kick", id=peer_id)).fields == {"id": peer_id}


def test_default_state_is_camera_and_microphone_on():
    state = signaling.default_state()

    assert state == {"audio": True, "video": True, "screen": False, "hand": False}
    state["audio"] = False
    assert signaling.default_state()["audio"] is True


# --- Rate limiting -------------------------------------------------------------------------------


def test_rate_limiter_allows_a_burst_then_refuses():
    limiter = RateLimiter(1, 3)

    assert [limiter.allow(100.0) for _ in range(4)] == [True, True, True, False]


def test_rate_limiter_refills_at_its_rate():
    limiter = RateLimiter(2, 3)
    for _ in range(3):
        limiter.allow(100.0)

    assert limiter.allow(100.25) is False  # half a token
    assert limiter.allow(100.5) is True  # a whole one
    assert limiter.allow(100.5) is False
    assert [limiter.allow(101.5) for _ in range(3)] == [True, True, False]


def test_rate_limiter_never_holds_more_than_its_burst():
    limiter = RateLimiter(10, 2)
    limiter.allow(0.0)

    assert [limiter.allow(3600.0) for _ in range(3)] == [True, True, False]


def test_rate_limiter_is_full_at_first_whatever_the_clock():
    limiter = RateLimiter(1, 2)

    assert [limiter.allow(-5.0) for _ in range(3)] == [True, True, False]


def test_rate_limiter_refills_nothing_when_the_clock_goes_back():
    limiter = RateLimiter(1, 1)

    assert limiter.allow(50.0) is True
    assert limiter.allow(10.0) is False
    assert limiter.allow(50.5) is False
    assert limiter.allow(51.0) is True


def test_rate_limiter_at_the_default_settings():
    limiter = RateLimiter(50, 200)

    assert sum(limiter.allow(0.0) for _ in range(300)) == 200
    assert sum(limiter.allow(1.0) for _ in range(300)) == 50


@pytest.mark.parametrize(("rate", "burst"), [(0, 10), (-1, 10), (5, 0)])
def test_rate_limiter_refuses_a_useless_configuration(rate, burst):
    with pytest.raises(ValueError):
        RateLimiter(rate, burst)


def test_a_page_keeps_its_instance_across_reconnections_but_nobody_can_borrow_it():
    first = signaling.peer_instance("user:1", "page-0123456789")

    assert signaling.peer_instance("user:1", "page-0123456789") == first
    assert signaling.peer_instance("user:2", "page-0123456789") != first
    assert signaling.peer_instance("user:1", "page-9876543210") != first
    assert len(first) == 16


@pytest.mark.parametrize("client_instance", ["", "short", "bad/chars!here", "x" * 65])
def test_a_missing_or_malformed_instance_gets_a_fresh_one_each_time(client_instance):
    first = signaling.peer_instance("user:1", client_instance)

    assert signaling.peer_instance("user:1", client_instance) != first


# --- Protocol 2: calls through the media server -------------------------------------------------

SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"


def parse(message: dict) -> ClientMessage:
    return parse_client_message(json.dumps(message))


def test_publish_names_a_feed_and_carries_an_offer_and_nothing_else():
    message = parse(
        {
            "type": "publish",
            "feed": "screen",
            "description": {"type": "offer", "sdp": SDP, "extra": 1},
            "extra": True,
        }
    )

    assert message == ClientMessage(
        "publish", {"feed": "screen", "description": {"type": "offer", "sdp": SDP}}
    )


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (
            {"type": "publish", "feed": "window", "description": {"type": "offer", "sdp": SDP}},
            "bad-value",
        ),
        (
            {"type": "publish", "feed": "camera", "description": {"type": "answer", "sdp": SDP}},
            "bad-value",
        ),
        ({"type": "subscribe-answer", "description": {"type": "offer", "sdp": SDP}}, "bad-value"),
        ({"type": "unpublish"}, "missing-field"),
        ({"type": "trickle", "target": "elsewhere", "candidate": None}, "bad-value"),
        ({"type": "receive", "streams": {"mid": "1"}}, "wrong-type"),
        ({"type": "receive", "streams": [{"mid": "1", "layer": 3}]}, "bad-value"),
        ({"type": "receive", "streams": [{"mid": "1", "layer": True}]}, "bad-value"),
        ({"type": "receive", "streams": [{"mid": "1"}] * 201}, "too-large"),
        ({"type": "chat", "id": "a", "text": "   ", "sentAt": 1}, "bad-value"),
        ({"type": "chat", "id": "", "text": "hi", "sentAt": 1}, "bad-value"),
        ({"type": "chat", "id": "a", "text": "hi", "sentAt": "today"}, "bad-value"),
        ({"type": "chat", "id": "a", "text": "x" * 4001, "sentAt": 1}, "bad-value"),
        ({"type": "chat", "id": "a", "text": "\U0001f600" * 2001, "sentAt": 1}, "bad-value"),
        (
            {
                "type": "chat-history",
                "to": "p1",
                "messages": [{"id": "a", "text": "hi", "sentAt": 1}],
            },
            "missing-field",
        ),
    ],
)
def test_protocol_2_messages_that_break_the_rules_are_refused(message, code):
    assert refusal(json.dumps(message)).code == code


def test_a_chat_message_is_counted_as_javascript_counts_it():
    text = "\U0001f600" * 2000  # 4000 UTF-16 code units: the most there may be

    message = parse({"type": "chat", "id": "m-1", "text": text, "sentAt": 1767225600000})

    assert message.fields == {"id": "m-1", "text": text, "sentAt": 1767225600000}


def test_receive_keeps_only_what_it_names_for_each_stream():
    message = parse(
        {
            "type": "receive",
            "streams": [{"mid": "1", "layer": 0, "x": 1}, {"mid": "3", "send": False}],
        }
    )

    assert message.fields == {"streams": [{"mid": "1", "layer": 0}, {"mid": "3", "send": False}]}


def test_a_chat_history_carries_each_message_with_its_author():
    history = [
        {"id": "a", "text": "hi", "sentAt": 1, "from": {"id": "p2", "name": "Ann", "x": 1}, "y": 2}
    ]

    message = parse({"type": "chat-history", "to": "p1", "messages": history})

    assert message.fields == {
        "to": "p1",
        "messages": [{"id": "a", "text": "hi", "sentAt": 1, "from": {"id": "p2", "name": "Ann"}}],
    }


def test_the_welcome_of_protocol_2_says_how_the_media_travel_and_protocol_1_s_does_not():
    arguments = {
        "self_peer": {"id": "p1", "name": "Ann", "role": "participant", "instance": "i"},
        "peers": [],
        "ice_servers": [],
        "room": {"slug": "s", "name": "S", "locked": False},
    }

    assert "media" not in signaling.welcome(**arguments)
    second = signaling.welcome(**arguments, protocol=2, media_mode="sfu")
    assert (second["protocol"], second["media"]) == (2, {"mode": "sfu"})
