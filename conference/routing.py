"""Websocket routes, the Channels counterpart of urls.py."""

from django.urls import path, re_path

from conference.websocket import NotFound
from rooms.consumers import RoomConsumer

websocket_urlpatterns = [
    path("ws/rooms/<slug:slug>/", RoomConsumer.as_asgi()),
    # Last: every other address, which URLRouter would otherwise answer by raising.
    re_path(r"", NotFound()),
]
