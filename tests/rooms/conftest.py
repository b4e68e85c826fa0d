"""Fixtures for the room tests: a call with its people, with or without a lobby."""

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from rooms import live, services
from tests.factories import RoomFactory, UserFactory


class Call:
    """A room with its owner, two invitees and a stranger; another room for isolation checks."""

    def __init__(self, **room_fields):
        self.owner = UserFactory(username="olga", display_name="Olga")
        self.room = RoomFactory(owner=self.owner, name="Standup", **room_fields)
        self.ann = self.invitee("ann", "Ann")
        self.ben = self.invitee("ben", "Ben")
        self.stranger = UserFactory(username="sam")
        self.other_room = RoomFactory(owner=self.owner, name="Elsewhere")

    def invitee(self, username, name, room=None):
        user = UserFactory(username=username, display_name=name)
        services.invitation_create(room=room or self.room, created_by=self.owner, email=user.email)
        return user

    def guest(self, name="Gail"):
        _, token = services.invitation_create(
            room=self.room, created_by=self.owner, allow_guests=True
        )
        return services.invitation_redeem(token=token, guest_name=name)[1]


@pytest.fixture
def call(transactional_db):
    return Call()


@pytest.fixture
def lobby_call(transactional_db):
    call = Call(lobby_enabled=True)
    call.gail = call.guest("Gail")
    return call


@pytest.fixture
def listener():
    """Listen to rooms' live-call groups on the channel layer; yield a function that adds one."""
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    groups = []

    def listen(room) -> str:
        group = live.room_group(room.slug)
        async_to_sync(layer.group_add)(group, channel)
        groups.append(group)
        return channel

    yield listen
    for group in groups:
        async_to_sync(layer.group_discard)(group, channel)
