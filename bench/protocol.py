"""
The subset of the signaling protocol (docs/signaling.md) that the two baselines speak.

The bare relay (bench/relay.py) and the daphne floor (bench/floor.py) build every message they
send here, so both send exactly what the site sends for these types: `welcome`, `peer-joined`,
`peer-left`, `signal` with a server-stamped `from`, and `pong`. Nothing here is checked or
authenticated: a baseline costs only what any relay must do.
"""

import hashlib
import json
import re
import secrets
from urllib.parse import parse_qs, urlsplit

PROTOCOL_VERSION = 1

# Message types.
WELCOME = "welcome"
PEER_JOINED = "peer-joined"
PEER_LEFT = "peer-left"
SIGNAL = "signal"
PING = "ping"
PONG = "pong"

# Why a peer left: it closed its websocket on purpose, or the connection dropped.
LEFT = "left"
LOST = "lost"
CLEAN_CLOSE_CODES = frozenset({1000, 1001})

# The one endpoint, as the site has it.
ROOM_PATH = re.compile(r"/ws/rooms/(?P<slug>[-a-zA-Z0-9_]+)/")
_INSTANCE = re.compile(r"[A-Za-z0-9_-]{8,64}")


def room_slug(path: str) -> str | None:
    """Return the room's slug from a websocket's path (with or without a query), or None."""
    match = ROOM_PATH.fullmatch(urlsplit(path).path)
    return match["slug"] if match else None


def new_peer(query_string: str) -> dict:
    """Return a new peer as the others see it, with the instance the page named in the query."""
    instance = parse_qs(query_string).get("instance", [""])[0]
    if not _INSTANCE.fullmatch(instance):
        instance = secrets.token_urlsafe(12)
    peer_id = secrets.token_urlsafe(9)
    return {
        "id": peer_id,
        "name": f"Peer {peer_id[:4]}",
        "role": "participant",
        "state": {"audio": True, "video": True, "screen": False, "hand": False},
        # Published hashed, as the site does, so a client cannot tell it from the site's.
        "instance": hashlib.sha256(instance.encode()).hexdigest()[:16],
    }


def welcome(peer: dict, others: list[dict], slug: str) -> str:
    return json.dumps(
        {
            "type": WELCOME,
            "protocol": PROTOCOL_VERSION,
            "self": {key: peer[key] for key in ("id", "name", "role", "instance")},
            "peers": others,
            "iceServers": [],
            "room": {"slug": slug, "name": slug, "locked": False},
        }
    )


def peer_joined(peer: dict) -> str:
    return json.dumps({"type": PEER_JOINED, "peer": peer})


def peer_left(peer_id: str, close_code: int | None) -> str:
    reason = LEFT if close_code in CLEAN_CLOSE_CODES else LOST
    return json.dumps({"type": PEER_LEFT, "id": peer_id, "reason": reason})


def signal(sender_id: str, data) -> str:
    return json.dumps({"type": SIGNAL, "from": sender_id, "data": data})


PONG_TEXT = json.dumps({"type": PONG})
