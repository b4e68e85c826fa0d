"""
The middleware every websocket passes through: an Origin check, then the Django session.
"""

import json
from urllib.parse import urlparse

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import OriginValidator
from django.conf import settings

from rooms import signaling


class RefusedOrigin:
    """
    Accept the socket, say why it is refused, then close it with 4403.

    Closing before accepting would make daphne answer with a bare HTTP 403, and a client
    would never learn the reason.
    """

    async def __call__(self, scope, receive, send):
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        error = signaling.closing_error(signaling.ORIGIN_NOT_ALLOWED)
        await send({"type": "websocket.send", "text": json.dumps(error)})
        await send(
            {"type": "websocket.close", "code": signaling.CLOSE_CODES[signaling.ORIGIN_NOT_ALLOWED]}
        )


class SiteOriginValidator(OriginValidator):
    """Allow only the site's own origins (settings.WEBSOCKET_ALLOWED_ORIGINS), never a wildcard."""

    def __init__(self, application, allowed_origins=None):
        origins = settings.WEBSOCKET_ALLOWED_ORIGINS if allowed_origins is None else allowed_origins
        super().__init__(application, [origin for origin in origins if origin != "*"])

    async def __call__(self, scope, receive, send):
        parsed_origin = None
        for header_name, header_value in scope.get("headers", []):
            if header_name == b"origin":
                parsed_origin = self.parse_origin(header_value)
        if self.valid_origin(parsed_origin):
            return await self.application(scope, receive, send)
        return await RefusedOrigin()(scope, receive, send)

    @staticmethod
    def parse_origin(value: bytes):
        try:
            return urlparse(value.decode("latin1"))
        except ValueError:
            return None


def websocket_stack(inner):
    """Wrap a websocket application in the Origin check and session authentication."""
    return SiteOriginValidator(AuthMiddlewareStack(inner))
