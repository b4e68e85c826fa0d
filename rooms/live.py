"""
Notices from the rest of the site (views, services, Django admin) to a room's live call.

They travel on the channel layer to the room's group; the signaling consumer acts on them. Room-wide
notices are the only group messages: signals to one peer go to that peer's channel alone.
"""

import logging

import redis.exceptions
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from rooms.presence import get_presence

logger = logging.getLogger(__name__)


def room_group(slug: str) -> str:
    """Return the channel-layer group of a room's live call."""
    return f"room.{slug}"


def notify(slug: str, event: dict) -> None:
    """Send a notice to a room's live call; a Redis outage loses it, with a warning, not a 500."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(room_group(slug), event)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
        logger.warning("could not tell the call in room %s of %s: %s", slug, event["type"], error)


def room_locked(slug: str, *, locked: bool) -> None:
    notify(slug, {"type": "room.locked", "locked": locked})


def call_end(slug: str, *, ended_by: str = "") -> None:
    """Close everyone's connection; `ended_by` is the peer id of the host who ended it, if any."""
    notify(slug, {"type": "room.end", "by": ended_by})


def access_changed(slug: str) -> None:
    """Make everyone in the call (and its lobby) ask the access rule again: bans, roles, links."""
    notify(slug, {"type": "access.changed"})


def call_file(slug: str, file: dict) -> None:
    """Announce a file shared in the call: id, name, size, mime, sha256, url, and who sent it."""
    notify(slug, {"type": "call.file", "file": file})


def participant_count(slug: str) -> int:
    """Return how many people are in the room's call now (not counting the lobby)."""
    return get_presence().count(slug)


def peer_in_call(slug: str, peer_id: str) -> dict | None:
    """Return the entry of a peer in the room's call now (not its lobby), if it is there."""
    return get_presence().entry_now(slug, peer_id)


def call_media(slug: str) -> dict | None:
    """Return how the room's live call carries media: None (peer-to-peer) or its media server."""
    return get_presence().media_now(slug)


def participant_names(slug: str) -> list[str]:
    """Return the names of the people in the room's call now."""
    return get_presence().names(slug)
