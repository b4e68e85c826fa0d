"""
The ASGI entry point: daphne serves HTTP through Django and websockets through Channels.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "conference.settings")

# Set Django up before anything imports models (the websocket routes do).
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from conference.routing import websocket_urlpatterns  # noqa: E402
from conference.websocket import websocket_stack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": websocket_stack(URLRouter(websocket_urlpatterns)),
    }
)
