"""
The ICE servers handed to browsers, with short-lived TURN credentials.

TURN credentials follow the TURN REST scheme that coturn implements with ``use-auth-secret``: the
username is "<expiry unix time>:<peer id>" and the password is base64(HMAC-SHA1(secret, username)).
coturn recomputes the HMAC with the same ``static-auth-secret`` (settings.TURN_SECRET) and refuses
the username once its expiry has passed, so the server never has to tell coturn about a credential.
"""

import base64
import hashlib
import hmac
import time
from typing import Any

from django.conf import settings


def ice_servers(*, peer_id: str, now: float | None = None) -> list[dict[str, Any]]:
    """
    Return the RTCIceServer dicts for one peer: the STUN servers, then TURN with a credential.

    TURN is left out unless both TURN_URLS and TURN_SECRET are set: a TURN server without a
    secret would either refuse everyone or relay for anyone.
    """
    servers: list[dict[str, Any]] = []
    if settings.ICE_STUN_URLS:
        servers.append({"urls": list(settings.ICE_STUN_URLS)})
    if settings.TURN_URLS and settings.TURN_SECRET:
        now = time.time() if now is None else now
        expires_at = int(now) + settings.TURN_CREDENTIAL_LIFETIME
        username = f"{expires_at}:{peer_id}"
        servers.append(
            {
                "urls": list(settings.TURN_URLS),
                "username": username,
                "credential": _credential(settings.TURN_SECRET, username),
            }
        )
    return servers


def verify_turn_credential(username: str, credential: str, *, now: float | None = None) -> bool:
    """Return whether coturn would accept this username and credential: a valid HMAC, unexpired."""
    if not settings.TURN_SECRET:
        return False
    expiry, separator, _peer_id = username.partition(":")
    # int() would also accept " 12", "+12", "1_2" and non-ASCII digits; coturn would not.
    if not separator or not (expiry.isascii() and expiry.isdigit()):
        return False
    now = time.time() if now is None else now
    if int(expiry) <= now:
        return False
    expected = _credential(settings.TURN_SECRET, username).encode("ascii")
    return hmac.compare_digest(expected, credential.encode("utf-8", "surrogatepass"))


def _credential(secret: str, username: str) -> str:
    # SHA-1 because the TURN REST scheme (and coturn) define the credential with it.
    mac = hmac.new(secret.encode(), username.encode("utf-8", "surrogatepass"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")
