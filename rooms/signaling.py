"""
The signaling wire protocol, versions 1 and 2: parse what clients send, build what it is sent.

docs/signaling.md is the public contract; this module is its executable half. It is pure (no ORM,
no channel layer, no I/O) and runs for every websocket frame, so each frame is parsed once and
every result is built from validated values only.

Client to server: ``parse_client_message(text)`` returns a ``ClientMessage(type, fields)`` or raises
``ProtocolError(code, message)``. ``type`` is always one of the module's own constants in
``CLIENT_MESSAGE_TYPES``, never a string taken from the client, so it is safe to derive a
channel-layer event type from it. ``fields`` is a new dict of validated values; keys the protocol
does not define are dropped wherever they appear (top level, ``data``, a description, a candidate),
so whatever is relayed holds only the fields below:

    ping, end                {}
    state                    {"state": {"audio": bool, "video": bool, "screen": bool, "hand": bool}}
    admit, deny, kick, mute  {"id": <peer id>}
    lock                     {"locked": bool}
    publish                  {"feed": "camera" | "screen", "description": <offer>}   (protocol 2)
    unpublish                {"feed": "camera" | "screen"}
    subscribe-answer         {"description": <answer>}
    receive                  {"streams": [{"mid": str, "send"?: bool, "layer"?: 0 | 1 | 2}]}
    trickle                  {"target": <feed> | "subscription", "candidate": <candidate>}
    chat                     {"id": str, "text": str, "sentAt": number}
    chat-history             {"to": <peer id>, "messages": [chat + {"from": {"id", "name"}}]}
    signal                   {"to": <peer id>, "data": {"description": {"type": str, "sdp": str}}}
                          or {"to": <peer id>, "data": {"candidate": None}}
                          or {"to": <peer id>, "data": {"candidate": {"candidate": str, ...}}}

A relayed candidate holds "candidate" and whichever of "sdpMid" (str | None), "sdpMLineIndex"
(int 0..65535 | None) and "usernameFragment" (str | None) the client sent; nothing else.
A description always carries "sdp" (an absent rollback sdp becomes ""). Every relayed string is
valid Unicode (no lone surrogates), so it survives msgpack in the Redis channel layer.

Server to client: one builder per message (``welcome``, ``lobby``, ``knock``, ...), each returning a
new plain dict for ``send_json``. Builders copy only the documented keys out of the mappings they
are given, so a richer internal record (say, one holding a channel name) never leaks to clients.

Refusals and endings: an ``error`` message, then a close with ``CLOSE_CODES[code]``;
``closing_error(code, **extra)`` builds the message with its standard sentence.
"""

import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from django.utils.crypto import salted_hmac
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

PROTOCOL_VERSION: Final = 1
# Protocol 2 adds calls through the media server; a client asks for it with ?protocol=2.
PROTOCOL_VERSIONS: Final = (1, 2)

# --- Client message types ---------------------------------------------------------------------
SIGNAL: Final = "signal"
STATE: Final = "state"
PING: Final = "ping"
ADMIT: Final = "admit"
DENY: Final = "deny"
KICK: Final = "kick"
MUTE: Final = "mute"
LOCK: Final = "lock"
END: Final = "end"
# Only hosts and co-hosts may send these; the consumer checks the role, not this module.
HOST_ACTIONS: Final = frozenset({ADMIT, DENY, KICK, MUTE, LOCK, END})
# Protocol 2, in calls through the media server only.
PUBLISH: Final = "publish"
UNPUBLISH: Final = "unpublish"
SUBSCRIBE_ANSWER: Final = "subscribe-answer"
RECEIVE: Final = "receive"
TRICKLE: Final = "trickle"
CHAT: Final = "chat"
CHAT_HISTORY: Final = "chat-history"
SFU_MESSAGES: Final = frozenset(
    {PUBLISH, UNPUBLISH, SUBSCRIBE_ANSWER, RECEIVE, TRICKLE, CHAT, CHAT_HISTORY}
)
CLIENT_MESSAGE_TYPES: Final = frozenset({SIGNAL, STATE, PING}) | HOST_ACTIONS | SFU_MESSAGES

# The media modes of a call, and the feeds a participant publishes in the media server's.
MESH: Final = "mesh"
SFU: Final = "sfu"
FEEDS: Final = ("camera", "screen")
SUBSCRIPTION: Final = "subscription"  # a trickle's target: the connection that receives

# --- Error codes for a message that was refused (the connection stays open) -------------------
BAD_JSON: Final = "bad-json"
NOT_AN_OBJECT: Final = "not-an-object"
UNKNOWN_TYPE: Final = "unknown-type"
MISSING_FIELD: Final = "missing-field"
WRONG_TYPE: Final = "wrong-type"
TOO_LARGE: Final = "too-large"
BAD_VALUE: Final = "bad-value"
BINARY_NOT_SUPPORTED: Final = "binary-not-supported"
HOST_ONLY: Final = "host-only"  # a host action from a participant
NOT_ADMITTED: Final = "not-admitted"  # anything but ping while waiting in the lobby
PEER_BUSY: Final = "peer-busy"  # a signal the addressee's full queue could not take
WRONG_MODE: Final = "wrong-mode"  # a message of the media server's calls in a mesh call
MEDIA_UNAVAILABLE: Final = "media-unavailable"  # the media server refused or is out of reach

# --- Error codes sent just before the server closes the connection -----------------------------
NOT_SIGNED_IN: Final = "not-signed-in"
NOT_ALLOWED: Final = "not-allowed"
ORIGIN_NOT_ALLOWED: Final = "origin-not-allowed"
KICKED: Final = "kicked"
DENIED: Final = "denied"
NO_SUCH_ROOM: Final = "no-such-room"
ROOM_FULL: Final = "room-full"
ENDED: Final = "ended"
MEETING_OVER: Final = "meeting-over"
LOCKED: Final = "locked"
TOO_EARLY: Final = "too-early"
RATE_LIMITED: Final = "rate-limited"
TIMED_OUT: Final = "timed-out"
NOT_FOUND: Final = "not-found"  # a websocket path that is no endpoint
REPLACED: Final = "replaced"  # the same page connected again; this older connection goes
UNAVAILABLE: Final = "unavailable"  # the server's message bus (Redis) stayed unreachable
PROTOCOL_UNSUPPORTED: Final = "protocol-unsupported"  # a protocol 1 client in a call on the SFU

# --- Close codes --------------------------------------------------------------------------------
CLOSE_NOT_SIGNED_IN: Final = 4401
CLOSE_NOT_ALLOWED: Final = 4403
CLOSE_NO_SUCH_ROOM: Final = 4404
CLOSE_ROOM_FULL: Final = 4409
CLOSE_ENDED: Final = 4410
CLOSE_LOCKED: Final = 4423
CLOSE_TOO_EARLY: Final = 4425
CLOSE_RATE_LIMITED: Final = 4429
CLOSE_TIMED_OUT: Final = 4408
CLOSE_REPLACED: Final = 4412
CLOSE_TRY_AGAIN_LATER: Final = 1013  # RFC 6455's own code for a server that is overloaded
CLOSE_UPGRADE_REQUIRED: Final = 4426

CLOSE_CODES: Final[Mapping[str, int]] = MappingProxyType(
    {
        NOT_SIGNED_IN: CLOSE_NOT_SIGNED_IN,
        NOT_ALLOWED: CLOSE_NOT_ALLOWED,
        ORIGIN_NOT_ALLOWED: CLOSE_NOT_ALLOWED,
        KICKED: CLOSE_NOT_ALLOWED,
        DENIED: CLOSE_NOT_ALLOWED,
        NO_SUCH_ROOM: CLOSE_NO_SUCH_ROOM,
        ROOM_FULL: CLOSE_ROOM_FULL,
        ENDED: CLOSE_ENDED,
        MEETING_OVER: CLOSE_ENDED,
        LOCKED: CLOSE_LOCKED,
        TOO_EARLY: CLOSE_TOO_EARLY,
        RATE_LIMITED: CLOSE_RATE_LIMITED,
        TIMED_OUT: CLOSE_TIMED_OUT,
        NOT_FOUND: CLOSE_NO_SUCH_ROOM,
        REPLACED: CLOSE_REPLACED,
        UNAVAILABLE: CLOSE_TRY_AGAIN_LATER,
        PROTOCOL_UNSUPPORTED: CLOSE_UPGRADE_REQUIRED,
    }
)

# Marked with gettext_noop so makemessages finds them; translated when a message is built, in the
# language active for that connection.
_CLOSING_SENTENCES: Final = MappingProxyType(
    {
        NOT_SIGNED_IN: gettext_noop("Sign in, or open your invitation link, to join this call."),
        NOT_ALLOWED: gettext_noop("You may not join this call."),
        ORIGIN_NOT_ALLOWED: gettext_noop(
            "This page's origin may not open a call connection to this site."
        ),
        KICKED: gettext_noop("A host removed you from this call."),
        DENIED: gettext_noop("A host did not let you in."),
        NO_SUCH_ROOM: gettext_noop("There is no such room."),
        ROOM_FULL: gettext_noop("This call is full."),
        ENDED: gettext_noop("A host ended the call for everyone."),
        MEETING_OVER: gettext_noop("This meeting is over."),
        LOCKED: gettext_noop("This room is locked: only hosts can join now."),
        TOO_EARLY: gettext_noop("This meeting has not opened yet."),
        RATE_LIMITED: gettext_noop("Too many messages: the connection was closed."),
        TIMED_OUT: gettext_noop("Nothing was heard from this connection; send a ping every 15 s."),
        NOT_FOUND: gettext_noop("There is no call at this address."),
        REPLACED: gettext_noop(
            "This page connected to the call again; this older connection ended."
        ),
        UNAVAILABLE: gettext_noop(
            "The call service is briefly unavailable; connect again shortly."
        ),
        PROTOCOL_UNSUPPORTED: gettext_noop(
            "This call goes through the media server, which this client does not support."
        ),
    }
)

# --- Limits -------------------------------------------------------------------------------------
MAX_FRAME_BYTES: Final = 80 * 1024
MAX_SDP_BYTES: Final = 64 * 1024
# Applies to each string of an ICE candidate: candidate, sdpMid and usernameFragment.
MAX_CANDIDATE_BYTES: Final = 4 * 1024
MAX_DEPTH: Final = 32
MAX_PEER_ID_LENGTH: Final = 64
DESCRIPTION_TYPES: Final = ("offer", "answer", "pranswer", "rollback")
STATE_KEYS: Final = ("audio", "video", "screen", "hand")
MAX_CHAT_ID_LENGTH: Final = 64
MAX_CHAT_TEXT_LENGTH: Final = 4000  # UTF-16 code units, as JavaScript counts
MAX_CHAT_HISTORY: Final = 200
MAX_MID_LENGTH: Final = 32
MAX_RECEIVE_STREAMS: Final = 200
LAYERS: Final = (0, 1, 2)

_INSTANCE = re.compile(r"[A-Za-z0-9_-]{8,64}")
_PEER_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_PEER_ID_LENGTH}}}")
_MAX_M_LINE_INDEX = 65535  # sdpMLineIndex is an unsigned short in WebIDL


class ProtocolError(Exception):
    """A client message the server refuses: ``code`` for programs, ``message`` for people."""

    def __init__(self, code: str, message: str):
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self):
        return f"{self.code}: {self.message}"


@dataclass(frozen=True, slots=True)
class ClientMessage:
    """A validated client message: ``type`` from CLIENT_MESSAGE_TYPES, ``fields`` as documented."""

    type: str
    fields: dict[str, Any] = field(default_factory=dict)


# --- Parsing ------------------------------------------------------------------------------------


def parse_client_message(text: str) -> ClientMessage:
    """Parse and validate one websocket text frame; raise ProtocolError when it is refused."""
    # The size is checked before parsing so an oversized frame costs no decoding work.
    if len(text) > MAX_FRAME_BYTES or _utf8_size(text) > MAX_FRAME_BYTES:
        raise ProtocolError(
            TOO_LARGE, _("The message is larger than %(limit)d bytes.") % {"limit": MAX_FRAME_BYTES}
        )
    try:
        value = _DECODER.decode(text)
    except (ValueError, RecursionError):
        # ValueError: JSONDecodeError, NaN and Infinity, duplicate keys, integers over 4300 digits.
        raise ProtocolError(BAD_JSON, _("The message is not valid JSON.")) from None
    if _deeper_than(value, MAX_DEPTH):
        raise ProtocolError(
            BAD_JSON,
            _("The message is nested deeper than %(limit)d levels.") % {"limit": MAX_DEPTH},
        )
    if not isinstance(value, dict):
        raise ProtocolError(NOT_AN_OBJECT, _("The message must be a JSON object."))
    message_type = _required(value, "type", "type")
    if not isinstance(message_type, str):
        raise _wrong_type("type", _STRING)
    parser = _PARSERS.get(message_type)
    if parser is None:
        raise ProtocolError(UNKNOWN_TYPE, _("The message type is not one this server knows."))
    return parser(value)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _object_without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key")
    return obj


_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_object_without_duplicate_keys, parse_constant=_reject_constant
)


def _deeper_than(value: Any, limit: int) -> bool:
    """Return whether arrays and objects nest more than ``limit`` levels in this JSON value."""
    # Level by level, in comprehensions, and with exact type checks: it is the fastest pure-Python
    # walk, and the decoder only ever produces exact dicts and lists.
    level = [value] if type(value) is dict or type(value) is list else []
    for _depth in range(limit):
        if not level:
            return False
        level = [
            child
            for container in level
            for child in (container.values() if type(container) is dict else container)
            if type(child) is dict or type(child) is list
        ]
    return bool(level)


def _utf8_size(text: str) -> int:
    """Return the length of this text in UTF-8 bytes, counting a lone surrogate as three."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _parse_ping(obj: dict[str, Any]) -> ClientMessage:
    return ClientMessage(PING, {})


def _parse_end(obj: dict[str, Any]) -> ClientMessage:
    return ClientMessage(END, {})


def _parse_lock(obj: dict[str, Any]) -> ClientMessage:
    return ClientMessage(LOCK, {"locked": _boolean(obj, "locked", "locked")})


def _parse_state(obj: dict[str, Any]) -> ClientMessage:
    state = _object(_required(obj, "state", "state"), "state")
    return ClientMessage(
        STATE, {"state": {key: _boolean(state, key, f"state.{key}") for key in STATE_KEYS}}
    )


def _targeted(message_type: str):
    def parse(obj: dict[str, Any]) -> ClientMessage:
        return ClientMessage(message_type, {"id": _peer_id(_required(obj, "id", "id"), "id")})

    return parse


def _parse_signal(obj: dict[str, Any]) -> ClientMessage:
    to = _peer_id(_required(obj, "to", "to"), "to")
    data = _object(_required(obj, "data", "data"), "data")
    if "description" in data:
        if "candidate" in data:
            raise ProtocolError(
                BAD_VALUE,
                _("A signal carries a description or a candidate, not both."),
            )
        relayed = {"description": _description(data["description"])}
    elif "candidate" in data:
        relayed = {"candidate": _candidate(data["candidate"])}
    else:
        raise ProtocolError(
            MISSING_FIELD,
            _("The field “data.description” or “data.candidate” is missing."),
        )
    return ClientMessage(SIGNAL, {"to": to, "data": relayed})


def _description(value: Any) -> dict[str, str]:
    description = _object(value, "data.description")
    kind = _required(description, "type", "data.description.type")
    if not isinstance(kind, str):
        raise _wrong_type("data.description.type", _STRING)
    if kind not in DESCRIPTION_TYPES:
        raise ProtocolError(
            BAD_VALUE,
            _("The field “data.description.type” must be offer, answer, pranswer or rollback."),
        )
    if kind == "rollback" and "sdp" not in description:
        return {"type": kind, "sdp": ""}
    path = "data.description.sdp"
    sdp = _relayed_text(_required(description, "sdp", path), path, MAX_SDP_BYTES)
    if not sdp and kind != "rollback":
        raise ProtocolError(
            BAD_VALUE, _("The field “%(field)s” must not be empty.") % {"field": path}
        )
    return {"type": kind, "sdp": sdp}


def _candidate(value: Any) -> dict[str, Any] | None:
    if value is None:  # end of candidates
        return None
    if not isinstance(value, dict):
        raise _wrong_type("data.candidate", _OBJECT_OR_NULL)
    path = "data.candidate.candidate"
    relayed: dict[str, Any] = {
        "candidate": _relayed_text(_required(value, "candidate", path), path, MAX_CANDIDATE_BYTES)
    }
    for key in ("sdpMid", "usernameFragment"):
        if key in value:
            text = value[key]
            if text is not None:
                path = f"data.candidate.{key}"
                _relayed_text(text, path, MAX_CANDIDATE_BYTES, _STRING_OR_NULL)
            relayed[key] = text
    if "sdpMLineIndex" in value:
        index = value["sdpMLineIndex"]
        if index is not None:
            if type(index) is not int:  # bool is an int subclass, and is refused too
                raise _wrong_type("data.candidate.sdpMLineIndex", _INTEGER_OR_NULL)
            if not 0 <= index <= _MAX_M_LINE_INDEX:
                raise ProtocolError(
                    BAD_VALUE,
                    _("The field “%(field)s” must be between 0 and %(maximum)d.")
                    % {"field": "data.candidate.sdpMLineIndex", "maximum": _MAX_M_LINE_INDEX},
                )
        relayed["sdpMLineIndex"] = index
    return relayed


def _parse_publish(obj: dict[str, Any]) -> ClientMessage:
    return ClientMessage(
        PUBLISH,
        {"feed": _feed(obj), "description": _description_of(obj, "description", ("offer",))},
    )


def _parse_unpublish(obj: dict[str, Any]) -> ClientMessage:
    return ClientMessage(UNPUBLISH, {"feed": _feed(obj)})


def _parse_subscribe_answer(obj: dict[str, Any]) -> ClientMessage:
    return ClientMessage(
        SUBSCRIBE_ANSWER, {"description": _description_of(obj, "description", ("answer",))}
    )


def _parse_trickle(obj: dict[str, Any]) -> ClientMessage:
    target = _required(obj, "target", "target")
    if target not in (*FEEDS, SUBSCRIPTION):
        raise ProtocolError(
            BAD_VALUE, _("The field “target” must be camera, screen or subscription.")
        )
    return ClientMessage(
        TRICKLE,
        {"target": target, "candidate": _candidate(_required(obj, "candidate", "candidate"))},
    )


def _parse_receive(obj: dict[str, Any]) -> ClientMessage:
    streams = _required(obj, "streams", "streams")
    if not isinstance(streams, list):
        raise ProtocolError(WRONG_TYPE, _("The field “streams” must be a list."))
    if len(streams) > MAX_RECEIVE_STREAMS:
        raise ProtocolError(
            TOO_LARGE,
            _("The field “streams” holds more than %(limit)d items.")
            % {"limit": MAX_RECEIVE_STREAMS},
        )
    parsed = []
    for number, value in enumerate(streams):
        path = f"streams[{number}]"
        stream = _object(value, path)
        mid = _relayed_text(_required(stream, "mid", f"{path}.mid"), f"{path}.mid", MAX_MID_LENGTH)
        item: dict[str, Any] = {"mid": mid}
        if "send" in stream:
            item["send"] = _boolean(stream, "send", f"{path}.send")
        if "layer" in stream:
            if type(stream["layer"]) is not int or stream["layer"] not in LAYERS:
                raise ProtocolError(
                    BAD_VALUE,
                    _("The field “%(field)s” must be 0, 1 or 2.") % {"field": f"{path}.layer"},
                )
            item["layer"] = stream["layer"]
        parsed.append(item)
    return ClientMessage(RECEIVE, {"streams": parsed})


def _parse_chat(obj: dict[str, Any]) -> ClientMessage:
    return ClientMessage(CHAT, _chat_message(obj, ""))


def _parse_chat_history(obj: dict[str, Any]) -> ClientMessage:
    to = _peer_id(_required(obj, "to", "to"), "to")
    messages = _required(obj, "messages", "messages")
    if not isinstance(messages, list):
        raise ProtocolError(WRONG_TYPE, _("The field “messages” must be a list."))
    if len(messages) > MAX_CHAT_HISTORY:
        raise ProtocolError(
            TOO_LARGE,
            _("The field “messages” holds more than %(limit)d items.")
            % {"limit": MAX_CHAT_HISTORY},
        )
    history = []
    for number, value in enumerate(messages):
        path = f"messages[{number}]"
        message = _object(value, path)
        item = _chat_message(message, f"{path}.")
        author = _object(_required(message, "from", f"{path}.from"), f"{path}.from")
        item["from"] = {
            "id": _peer_id(_required(author, "id", f"{path}.from.id"), f"{path}.from.id"),
            "name": _relayed_text(
                _required(author, "name", f"{path}.from.name"), f"{path}.from.name", 200
            ),
        }
        history.append(item)
    return ClientMessage(CHAT_HISTORY, {"to": to, "messages": history})


def _chat_message(obj: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Return a chat message's id, text and sentAt, checked as docs/signaling.md says."""
    message_id = _relayed_text(
        _required(obj, "id", f"{prefix}id"), f"{prefix}id", MAX_CHAT_ID_LENGTH
    )
    text = _relayed_text(_required(obj, "text", f"{prefix}text"), f"{prefix}text", 4 * 4000)
    if not message_id:
        raise ProtocolError(
            BAD_VALUE, _("The field “%(field)s” must not be empty.") % {"field": f"{prefix}id"}
        )
    if not text.strip() or len(text.encode("utf-16-le")) // 2 > MAX_CHAT_TEXT_LENGTH:
        raise ProtocolError(
            BAD_VALUE,
            _("The field “%(field)s” must hold 1 to %(limit)d characters, not only spaces.")
            % {"field": f"{prefix}text", "limit": MAX_CHAT_TEXT_LENGTH},
        )
    sent_at = _required(obj, "sentAt", f"{prefix}sentAt")
    if type(sent_at) not in (int, float) or not 0 <= sent_at < 2**53:
        raise ProtocolError(
            BAD_VALUE,
            _("The field “%(field)s” must be a time in milliseconds since 1970.")
            % {"field": f"{prefix}sentAt"},
        )
    return {"id": message_id, "text": text, "sentAt": sent_at}


def _feed(obj: dict[str, Any]) -> str:
    feed = _required(obj, "feed", "feed")
    if feed not in FEEDS:
        raise ProtocolError(BAD_VALUE, _("The field “feed” must be camera or screen."))
    return feed


def _description_of(obj: dict[str, Any], key: str, kinds: tuple[str, ...]) -> dict[str, str]:
    description = _description(_required(obj, key, key))
    if description["type"] not in kinds:
        raise ProtocolError(
            BAD_VALUE,
            _("The field “%(field)s” must be of type %(kind)s.")
            % {"field": f"{key}.type", "kind": " or ".join(kinds)},
        )
    return description


# The kinds of value a field may be expected to hold, each with its own whole sentence so that
# translators never have to assemble one from fragments.
_STRING = "string"
_STRING_OR_NULL = "string-or-null"
_BOOLEAN = "boolean"
_OBJECT = "object"
_OBJECT_OR_NULL = "object-or-null"
_INTEGER_OR_NULL = "integer-or-null"
_WRONG_TYPE_SENTENCES: Final = MappingProxyType(
    {
        _STRING: gettext_noop("The field “%(field)s” must be a string."),
        _STRING_OR_NULL: gettext_noop("The field “%(field)s” must be a string or null."),
        _BOOLEAN: gettext_noop("The field “%(field)s” must be true or false."),
        _OBJECT: gettext_noop("The field “%(field)s” must be an object."),
        _OBJECT_OR_NULL: gettext_noop("The field “%(field)s” must be an object or null."),
        _INTEGER_OR_NULL: gettext_noop("The field “%(field)s” must be an integer or null."),
    }
)


def _wrong_type(path: str, kind: str) -> ProtocolError:
    return ProtocolError(WRONG_TYPE, _(_WRONG_TYPE_SENTENCES[kind]) % {"field": path})


def _required(obj: dict[str, Any], key: str, path: str) -> Any:
    try:
        return obj[key]
    except KeyError:
        raise ProtocolError(
            MISSING_FIELD, _("The field “%(field)s” is missing.") % {"field": path}
        ) from None


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _wrong_type(path, _OBJECT)
    return value


def _boolean(obj: dict[str, Any], key: str, path: str) -> bool:
    value = _required(obj, key, path)
    if value is not True and value is not False:
        raise _wrong_type(path, _BOOLEAN)
    return value


def _relayed_text(value: Any, path: str, limit: int, kind: str = _STRING) -> str:
    """Return this string unchanged, refusing it over ``limit`` UTF-8 bytes or when not Unicode."""
    if not isinstance(value, str):
        raise _wrong_type(path, kind)
    if value.isascii():
        size = len(value)
    else:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate, which msgpack and browsers cannot carry
            raise ProtocolError(
                BAD_VALUE, _("The field “%(field)s” is not valid Unicode text.") % {"field": path}
            ) from None
    if size > limit:
        raise ProtocolError(
            TOO_LARGE,
            _("The field “%(field)s” is larger than %(limit)d bytes.")
            % {"field": path, "limit": limit},
        )
    return value


def _peer_id(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _wrong_type(path, _STRING)
    if _PEER_ID.fullmatch(value) is None:
        raise ProtocolError(
            BAD_VALUE, _("The field “%(field)s” is not a valid peer id.") % {"field": path}
        )
    return value


_PARSERS: Final = MappingProxyType(
    {
        SIGNAL: _parse_signal,
        STATE: _parse_state,
        PING: _parse_ping,
        ADMIT: _targeted(ADMIT),
        DENY: _targeted(DENY),
        KICK: _targeted(KICK),
        MUTE: _targeted(MUTE),
        LOCK: _parse_lock,
        END: _parse_end,
        PUBLISH: _parse_publish,
        UNPUBLISH: _parse_unpublish,
        SUBSCRIBE_ANSWER: _parse_subscribe_answer,
        RECEIVE: _parse_receive,
        TRICKLE: _parse_trickle,
        CHAT: _parse_chat,
        CHAT_HISTORY: _parse_chat_history,
    }
)


# --- Peers and rate limiting ----------------------------------------------------------------------


def peer_instance(person: str, client_instance: str) -> str:
    """
    Return the instance a peer is published with: the same for the same person and page.

    A page names itself with a random `instance` query parameter, kept across reconnections, so
    that others can tell it is the same page back under a new peer id. The server publishes a
    keyed hash of it together with the person, so nobody can claim another person's instance.
    """
    if not _INSTANCE.fullmatch(client_instance or ""):
        client_instance = secrets.token_urlsafe(12)  # no reconnection to match: a fresh one
    return salted_hmac("rooms.signaling.instance", f"{person}:{client_instance}").hexdigest()[:16]


def new_peer_id() -> str:
    """Return a new unguessable peer id: 12 characters of [A-Za-z0-9_-]."""
    return secrets.token_urlsafe(9)


def default_state() -> dict[str, bool]:
    """Return the media state a peer has until it sends its own: camera and microphone on."""
    return {"audio": True, "video": True, "screen": False, "hand": False}


class RateLimiter:
    """
    A token bucket: up to ``burst`` messages at once, refilled at ``rate_per_second``.

    The caller passes the time (``time.monotonic()``), so the bucket holds no clock of its own. A
    refused message takes no token.
    """

    __slots__ = ("rate_per_second", "burst", "_tokens", "_updated_at")

    def __init__(self, rate_per_second: float, burst: int):
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("a rate limiter needs a positive rate and a burst of at least 1")
        self.rate_per_second = float(rate_per_second)
        self.burst = float(burst)
        self._tokens = self.burst
        # Minus infinity makes the first call see a full bucket, whatever clock the caller uses.
        self._updated_at = float("-inf")

    def allow(self, now: float) -> bool:
        """Take a token and return True, or return False when the bucket is empty."""
        elapsed = now - self._updated_at
        if elapsed > 0:  # a clock that went backwards refills nothing
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate_per_second)
            self._updated_at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


# --- Server to client -----------------------------------------------------------------------------


def welcome(
    *,
    self_peer: Mapping[str, Any],
    peers: Iterable[Mapping[str, Any]],
    ice_servers: Iterable[Mapping[str, Any]],
    room: Mapping[str, Any],
    protocol: int = PROTOCOL_VERSION,
    media_mode: str = MESH,
) -> dict[str, Any]:
    """
    Build the message that lets a peer into the call.

    ``self_peer`` has id, name, role and instance; each of ``peers`` (everyone else in the call)
    also has state; ``room`` has slug, name and locked. Protocol 2 adds the call's media mode.
    """
    message = {
        "type": "welcome",
        "protocol": protocol,
        "self": {
            "id": self_peer["id"],
            "name": self_peer["name"],
            "role": self_peer["role"],
            "instance": self_peer["instance"],
        },
        "peers": [_peer(peer) for peer in peers],
        "iceServers": [dict(server) for server in ice_servers],
        "room": {"slug": room["slug"], "name": room["name"], "locked": bool(room["locked"])},
    }
    if protocol >= 2:
        message["media"] = {"mode": media_mode}
    return message


def media_mode(mode: str) -> dict[str, Any]:
    return {"type": "media", "mode": mode}


def published(feed: str, description: Mapping[str, str]) -> dict[str, Any]:
    return {"type": "published", "feed": feed, "description": _sdp(description)}


def subscription(
    description: Mapping[str, str], streams: Iterable[Mapping[str, str]]
) -> dict[str, Any]:
    return {
        "type": "subscription",
        "description": _sdp(description),
        "streams": [
            {key: stream[key] for key in ("mid", "peer", "feed", "kind")} for stream in streams
        ],
    }


def trickle(target: str, candidate: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"type": "trickle", "target": target, "candidate": candidate}


def chat(message: Mapping[str, Any], *, sender: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "chat",
        "id": message["id"],
        "text": message["text"],
        "sentAt": message["sentAt"],
        "from": _identity(sender),
    }


def chat_history(messages: Iterable[Mapping[str, Any]], *, sender: str) -> dict[str, Any]:
    return {
        "type": "chat-history",
        "from": sender,
        "messages": [
            {
                "id": message["id"],
                "text": message["text"],
                "sentAt": message["sentAt"],
                "from": _identity(message["from"]),
            }
            for message in messages
        ],
    }


def file_shared(file: Mapping[str, Any]) -> dict[str, Any]:
    """Build the message that announces a file uploaded to the call (in sfu mode)."""
    shared = {key: file[key] for key in ("id", "name", "size", "mime", "sha256", "url")}
    return {"type": "file", **shared, "from": _identity(file["from"])}


def _sdp(description: Mapping[str, str]) -> dict[str, str]:
    return {"type": description["type"], "sdp": description["sdp"]}


def lobby() -> dict[str, Any]:
    """Build the message that tells a peer to wait until a host admits it."""
    return {"type": "lobby", "message": _("Please wait: a host will let you in soon.")}


def knock(*, peer: Mapping[str, Any]) -> dict[str, Any]:
    """Build the message that tells hosts someone (id, name) waits in the lobby."""
    return {"type": "knock", "peer": _identity(peer)}


def lobby_left(peer_id: str) -> dict[str, Any]:
    """Build the message that tells hosts this person no longer waits: admitted, denied or gone."""
    return {"type": "lobby-left", "id": peer_id}


def peer_joined(peer: Mapping[str, Any]) -> dict[str, Any]:
    """Build the message that tells peers someone (id, name, role, state) joined."""
    return {"type": "peer-joined", "peer": _peer(peer)}


LEFT: Final = "left"  # closed the connection on purpose (left the call, closed the page)
LOST: Final = "lost"  # the connection dropped, went silent, or its server process died
REMOVED: Final = "removed"  # kicked by a host
LEAVE_REASONS: Final = frozenset({LEFT, LOST, REMOVED})


def peer_left(peer_id: str, reason: str = LEFT) -> dict[str, Any]:
    """
    Build the message that tells peers someone left, was removed or lost its connection.

    A peer that was `lost` may come back under a new id with the same `instance`: a client keeps
    its media with it for a while rather than hanging up at once.
    """
    return {"type": "peer-left", "id": peer_id, "reason": reason}


def peer_state(peer_id: str, state: Mapping[str, bool]) -> dict[str, Any]:
    """Build the message that tells peers someone's media state changed."""
    return {"type": "peer-state", "id": peer_id, "state": _state(state)}


def peer_role(peer_id: str, role: str) -> dict[str, Any]:
    """Build the message that tells everyone in the call someone's role changed (you, too)."""
    return {"type": "peer-role", "id": peer_id, "role": role}


def signal(*, sender: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """
    Build the message that relays signaling data from the peer whose id is ``sender``.

    ``data`` must be ``fields["data"]`` of a parsed signal message: it holds validated fields only.
    """
    return {"type": "signal", "from": sender, "data": data}


def pong() -> dict[str, Any]:
    """Build the answer to a ping."""
    return {"type": "pong"}


def error_message(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """Build an error message; ``extra`` adds fields, such as ``opensAt`` for too-early."""
    return {"type": "error", "code": code, "message": str(message), **extra}


def closing_error(code: str, **extra: Any) -> dict[str, Any]:
    """Build the error sent just before closing with ``CLOSE_CODES[code]``, in standard words."""
    return error_message(code, _(_CLOSING_SENTENCES[code]), **extra)


def ended_message(*, by_you: bool = False) -> str:
    """Return the sentence that says the call was ended: by a host, or by you."""
    if by_you:
        return _("You ended the call for everyone.")
    return _(_CLOSING_SENTENCES[ENDED])


def mute_request(*, by: Mapping[str, Any]) -> dict[str, Any]:
    """Build the message that asks a peer to mute, naming the host (id, name) who asks."""
    return {"type": "mute-request", "by": _identity(by)}


def room_state(*, locked: bool) -> dict[str, Any]:
    """Build the message that tells everyone in the call the room was locked or unlocked."""
    return {"type": "room", "room": {"locked": bool(locked)}}


def _identity(peer: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": peer["id"], "name": peer["name"]}


def _peer(peer: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": peer["id"],
        "name": peer["name"],
        "role": peer["role"],
        "state": _state(peer["state"]),
        "instance": peer["instance"],
    }


def _state(state: Mapping[str, bool]) -> dict[str, bool]:
    return {key: bool(state[key]) for key in STATE_KEYS}
