"""
Notices from the rest of the site (views, services, Django admin) to a room's live call.

They travel on the channel layer to the room's group; the signaling consumer acts on them. Room-wide
notices are the only group messages: signals to one peer go to that peer's channel alone.
"""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from rooms.presence import get_presence


def room_group(slug: str) -> str:
    """Return the channel-layer group of a room's live call."""
    return f"room.{slug}"


def notify(slug: str, event: dict) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(room_group(slug), event)


def room_locked(slug: str, *, locked: bool) -> None:
    notify(slug, {"type": "room.locked", "locked": locked})


def call_end(slug: str) -> None:
    notify(slug, {"type": "room.end"})


def participant_count(slug: str) -> int:
    """Return how many people are in the room's call now (not counting the lobby)."""
    return get_presence().count(slug)


def participant_names(slug: str) -> list[str]:
    """Return the names of the people in the room's call now."""
    return get_presence().names(slug)
