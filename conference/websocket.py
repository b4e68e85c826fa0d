"""
The middleware every websocket passes through: an Origin check, then a check of its path; the
answer to an address that is no endpoint; and the session and user a websocket speaks for.
"""

import json
import logging
from importlib import import_module
from types import SimpleNamespace
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import auth
from django.http.cookie import parse_cookie
from django.http.request import is_same_domain, split_domain_port, validate_host

from rooms import signaling

logger = logging.getLogger(__name__)


class Refusal:
    """
    Accept the socket, say why it is refused, then close it with that reason's close code.

    Closing before accepting would make daphne answer with a bare HTTP 403, and a client
    would never learn the reason.
    """

    def __init__(self, code: str):
        self.code = code

    async def __call__(self, scope, receive, send):
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        error = signaling.closing_error(self.code)
        await send({"type": "websocket.send", "text": json.dumps(error)})
        await send({"type": "websocket.close", "code": signaling.CLOSE_CODES[self.code]})


class NotFound(Refusal):
    """
    Refuse an address that serves nothing with `not-found` and 4404, in one line of the log.

    It is the last websocket route, and RootPathCheck's answer. Without them channels' URLRouter
    raises, which costs a traceback in the log (any client could fill the log with them) and gives
    the client an HTTP 500 instead of a reason.
    """

    def __init__(self):
        super().__init__(signaling.NOT_FOUND)

    async def __call__(self, scope, receive, send):
        # %r keeps it to one line whatever the path holds (a decoded %0A is a newline).
        logger.warning("Websocket not found: %r", scope["path"])
        await super().__call__(scope, receive, send)


def header(scope, name: bytes) -> str | None:
    """Return a request header, repeated ones joined with commas as Django joins them."""
    values = [value.decode("latin1") for key, value in scope.get("headers", []) if key == name]
    return ",".join(values) if values else None


def request_scheme(scope) -> str:
    """Return "https" or "http", as Django's request.scheme says of an HTTP request."""
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        value = header(scope, meta_name.removeprefix("HTTP_").replace("_", "-").lower().encode())
        if value is not None:
            return "https" if value.split(",", 1)[0].strip() == secure_value else "http"
    # daphne puts no "scheme" in a websocket's scope, with or without --proxy-headers; the ASGI
    # default is "ws".
    return "https" if scope.get("scheme", "ws") == "wss" else "http"


def site_origin(scope) -> str | None:
    """
    Return the origin the socket was opened to (scheme://host[:port]), or None if its host is not
    one of ALLOWED_HOSTS, as Django's request.get_host() decides for an HTTP request.
    """
    host = header(scope, b"host")
    if settings.USE_X_FORWARDED_HOST:
        host = header(scope, b"x-forwarded-host") or host
    if host is None:
        return None
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, allowed_hosts):
        return None
    return f"{request_scheme(scope)}://{host}"


def trusted_origin(origin: str) -> bool:
    """Return whether an origin is in WEBSOCKET_ALLOWED_ORIGINS, read as CSRF_TRUSTED_ORIGINS is."""
    trusted = settings.WEBSOCKET_ALLOWED_ORIGINS
    if origin in (pattern for pattern in trusted if "*" not in pattern):
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    # "https://*.example.com" matches that scheme and any subdomain, with the same port; a
    # pattern left with no host ("*", "https://*") matches nothing.
    return any(
        is_same_domain(parsed.netloc, pattern.netloc.lstrip("*"))
        for pattern in (urlsplit(pattern) for pattern in trusted if "*" in pattern)
        if pattern.scheme == parsed.scheme
    )


class SiteOriginValidator:
    """
    Let a websocket in only from the site's own origin or a trusted one, by the rule of Django's
    CSRF origin check: the Origin header must equal the socket's own scheme, host and port (the
    host one of ALLOWED_HOSTS), or be one of WEBSOCKET_ALLOWED_ORIGINS. Refuse any other with
    `origin-not-allowed`.
    """

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        origin = header(scope, b"origin")
        if origin is not None and (origin == site_origin(scope) or trusted_origin(origin)):
            return await self.application(scope, receive, send)
        return await Refusal(signaling.ORIGIN_NOT_ALLOWED)(scope, receive, send)


class RootPathCheck:
    """
    Refuse with `not-found` a socket whose path is not under its root_path, which URLRouter would
    answer by raising. daphne takes root_path from --root-path, but also from a client's own
    Daphne-Root-Path header.
    """

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["path"].startswith(scope.get("root_path", "")):
            return await self.application(scope, receive, send)
        return await NotFound()(scope, receive, send)


def websocket_stack(inner):
    """
    Wrap a websocket application in the Origin check and the path check.

    Who is on the other end (the session and its user) is not looked up here: the application
    does it with session_of() and user_of() in the same trip to the database as the rest of
    what it needs, rather than in two more trips and with copies kept for the whole connection.
    """
    return SiteOriginValidator(RootPathCheck(inner))


def session_of(scope):
    """Return the session the websocket's cookie names (a new, empty one without a cookie)."""
    cookies = parse_cookie(header(scope, b"cookie") or "")
    engine = import_module(settings.SESSION_ENGINE)
    return engine.SessionStore(cookies.get(settings.SESSION_COOKIE_NAME))


def user_of(session):
    """Return who a session is signed in as, decided exactly as Django decides it for a page."""
    return auth.get_user(SimpleNamespace(session=session))
