"""
Settings for the conference site, one file for every environment.

Every knob comes from the environment (see .env.example). The embedded defaults run with nothing
else installed: SQLite and the in-memory channel layer. DATABASE_URL switches to PostgreSQL and
REDIS_URL switches the channel layer and the cache to Redis.
"""

import os
import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}.")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}.") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is false. Generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# A websocket is let in from the site's own origin, as a form is by Django's CSRF check: the same
# scheme, host and port as the socket, with the host in ALLOWED_HOSTS (conference/websocket.py).
# These are the other origins it is let in from: the ones trusted for forms, scheme://host[:port],
# where a host may start with "*." for its subdomains. So "*" in ALLOWED_HOSTS admits any Host
# header, never any origin.
WEBSOCKET_ALLOWED_ORIGINS = CSRF_TRUSTED_ORIGINS

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.forms",
    "channels",
    "allauth",
    "allauth.account",
    "accounts",
    "rooms",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "accounts.middleware.TimezoneMiddleware",
]

ROOT_URLCONF = "conference.urls"
ASGI_APPLICATION = "conference.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

FORM_RENDERER = "conference.forms.FormRenderer"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        # Connections are kept for a minute and checked before reuse: a call's connect makes one
        # trip to the database, which would otherwise open (and log in to) a connection each time.
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
REDIS_PREFIX = os.environ.get("REDIS_PREFIX", "conference")


def redis_channel_layer(url: str, prefix: str = REDIS_PREFIX) -> dict:
    """
    Return the channel layer settings for the Redis server at this URL.

    Each process delivers to its own consumers directly and reaches the others through Redis
    pub/sub (conference.layers.RedisChannelLayer): a restart of Redis loses no group membership,
    and a message for a consumer that is gone is simply not delivered.
    """
    return {
        "BACKEND": "conference.layers.RedisChannelLayer",
        "CONFIG": {
            "hosts": [
                {
                    "address": url,
                    # The subscriber's reads block without a timeout; other reads must be allowed
                    # to outlast a busy Redis: redis-py 8's default of 5 s dropped idle consumers
                    # of channels-redis (django/channels_redis#422), and would cut ours short.
                    "socket_timeout": 15,
                    "socket_connect_timeout": 5,
                }
            ],
            "prefix": prefix,
            "capacity": SIGNALING_CHANNEL_CAPACITY,
        },
    }


# How many events one connection's queue holds in the in-process layer: more than everyone else in
# the largest call can send it within their burst allowance (12 x 200), so that only a stalled
# connection ever fills it.
SIGNALING_CHANNEL_CAPACITY = env_int("SIGNALING_CHANNEL_CAPACITY", 5000)

if REDIS_URL:
    CHANNEL_LAYERS = {"default": redis_channel_layer(REDIS_URL)}
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_PREFIX,
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "conference.layers.InProcessChannelLayer",
            "CONFIG": {"capacity": SIGNALING_CHANNEL_CAPACITY},
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGOUT_REDIRECT_URL = "home"

# django-allauth: username and email sign-in; repeated failed sign-ins are throttled through the
# cache. Only a confirmed address counts as the person's own (invitations sent to it match it only
# then), so sign-up asks for the confirmation wherever mail reaches people: with EMAIL_HOST set,
# or in development, where the console backend prints the message. A site that cannot send mail
# keeps sign-up open ("optional"); its users confirm later from the email page.
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = os.environ.get("ACCOUNT_EMAIL_VERIFICATION") or (
    "mandatory" if os.environ.get("EMAIL_HOST") or DEBUG else "optional"
)
if ACCOUNT_EMAIL_VERIFICATION not in {"none", "optional", "mandatory"}:
    raise ImproperlyConfigured(
        "ACCOUNT_EMAIL_VERIFICATION must be none, optional or mandatory, "
        f"not {ACCOUNT_EMAIL_VERIFICATION!r}."
    )
# Following the link in the confirmation mail signs in the browser that signed up and takes it
# where it was going (the invitation it came from, say). The link opens a page with a Confirm
# button rather than confirming on GET, which mail scanners that open every link would do.
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_RATE_LIMITS = {
    "login_failed": os.environ.get("ACCOUNT_LOGIN_FAILED_RATE", "10/m/ip,5/5m/key"),
}
ACCOUNT_FORMS = {"signup": "accounts.forms.SignupForm"}

EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if os.environ.get("EMAIL_HOST")
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Conference <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL


def env_rate(name: str, default: str) -> str:
    """Read a rate in django-ratelimit's format: a count per period, e.g. 10/m or 100/2h."""
    value = os.environ.get(name) or default
    if not re.fullmatch(r"[1-9]\d*/\d*[smhd]", value):
        raise ImproperlyConfigured(
            f"{name} must be a count per period such as 10/m, 30/h or 100/2h, not {value!r}."
        )
    return value


# Invitations: limits per client address, counted in the cache (Redis with REDIS_URL; behind a
# reverse proxy daphne must pass on the client's address, see INVITATION_RATE in .env.example).
# Tries at redeeming an invitation: answers to an invitation page, and visits of unknown links.
INVITATION_RATE = env_rate("INVITATION_RATE", "10/m")
# New guests one client address may create, over all links.
INVITATION_GUEST_RATE = env_rate("INVITATION_GUEST_RATE", "30/h")
# Guests one link may let in; the one after that is refused.
INVITATION_GUEST_LIMIT = env_int("INVITATION_GUEST_LIMIT", 100)

LANGUAGE_CODE = "en-us"
LANGUAGES = [("en", _("English"))]
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
# The site's own formats where Django's differ: the 24-hour clock in the admin as on the site.
FORMAT_MODULE_PATH = ["conference.formats"]

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# In development WhiteNoise serves straight from the source folders, so `make run` needs no
# collectstatic; in production it serves the collected, hashed and compressed files.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# HTTPS: on by default whenever DEBUG is off; each can be turned off for a deployment that
# terminates TLS elsewhere and says so.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# Content-Security-Policy (django-csp), on every response, static files included: pages run only
# the site's own script files and style sheets. No inline <script>, no eval, no style="..."
# attribute, nothing from another origin. `json_script` blocks are data (type application/json),
# which CSP does not check. Images, media, fonts and fetches fall back to default-src:
# - 'self' also matches the call page's websocket to the same host and port (ws: from an http
#   page, wss: from an https page, as CSP Level 3 has it), so connect-src needs no ws:/wss: source;
# - a MediaStream shown through `srcObject` is no fetch, so <video> needs no media-src;
# - no page shows an image from a data: or blob: URL (a received file is a download link).
# Django's debug pages for 404 and 500 (DEBUG only) go out without the header.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
}

# The site's public address, for links in emails and the UIDs of calendar events.
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

# --- Calls ---------------------------------------------------------------------------------------
# STUN servers browsers use to find their public address; empty means host candidates only.
ICE_STUN_URLS = env_list("ICE_STUN_URLS", [])
# TURN servers (coturn with use-auth-secret), e.g. turn:turn.example.com:3478?transport=udp
TURN_URLS = env_list("TURN_URLS", [])
# The static-auth-secret shared with coturn; credentials handed to browsers are HMACs of it.
TURN_SECRET = os.environ.get("TURN_SECRET", "")
# How long a TURN credential handed to a browser stays valid, in seconds.
TURN_CREDENTIAL_LIFETIME = env_int("TURN_CREDENTIAL_LIFETIME", 4 * 3600)
# Janus media servers, the SFU that carries calls past the mesh: the addresses of their WebSocket
# API (private: only the site talks to it), comma-separated, e.g. ws://10.0.0.5:8188. Each live
# call is placed on one. Empty: every call is peer-to-peer.
JANUS_URLS = env_list("JANUS_URL", [])
# Janus's api_secret (janus.jcfg, general: api_secret), sent with every request.
JANUS_API_SECRET = os.environ.get("JANUS_API_SECRET", "")
# Hard limits on people in one call, peer-to-peer and through a media server; a room's own limit
# cannot exceed the one that applies to it.
MESH_MAX_PARTICIPANTS = 12
SFU_MAX_PARTICIPANTS = 50
# A room set to automatic moves its call to the media server when this many people are in it.
SFU_FROM_PARTICIPANTS = env_int("SFU_FROM_PARTICIPANTS", 5)
# Signaling: messages a connection may send per second (bursts up to the bucket size).
SIGNALING_RATE_PER_SECOND = env_int("SIGNALING_RATE_PER_SECOND", 50)
SIGNALING_RATE_BURST = env_int("SIGNALING_RATE_BURST", 200)
# A peer that has not been heard from (any message, or its process's heartbeat) for this many
# seconds is reported as left.
SIGNALING_PRESENCE_TTL = env_int("SIGNALING_PRESENCE_TTL", 30)
# While Redis is out of reach (a restart), calls keep their connections and retry for this many
# seconds; past that a connection closes with 1013 and the page connects again.
SIGNALING_OUTAGE_GRACE = env_int("SIGNALING_OUTAGE_GRACE", 15)
# Files shared in calls through the media server are uploaded to the site and kept under
# MEDIA_ROOT/call-files/ until the call ends or `manage.py clearcallfiles` finds them old. Django
# serves them itself, to the people in the room only: never expose MEDIA_ROOT on the web server.
MEDIA_ROOT = Path(os.environ.get("DJANGO_MEDIA_ROOT") or BASE_DIR / "media")
# The largest file one can share that way, in bytes; the reverse proxy must let such a body through.
CALL_FILE_MAX_BYTES = env_int("CALL_FILE_MAX_BYTES", 100 * 1024 * 1024)
