import secrets
import subprocess
import sys

from tests.conftest import BASE_DIR, django_settings, subprocess_env

PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "meet.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://meet.example.com",
    "DJANGO_SECURE_HSTS_PRELOAD": "true",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_check_passes_with_the_documented_production_variables():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_deploy_check_fails_when_a_production_safeguard_is_turned_off():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        **PRODUCTION,
        DJANGO_SESSION_COOKIE_SECURE="false",
    )

    assert result.returncode != 0
    assert "SESSION_COOKIE_SECURE" in result.stderr + result.stdout


def test_the_site_refuses_to_start_without_a_secret_key_in_production():
    env = {**PRODUCTION, "DJANGO_SECRET_KEY": ""}

    result = manage("check", **env)

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is false" in result.stderr


def test_the_embedded_defaults_need_no_other_service():
    result = django_settings(
        "s.DATABASES['default']['ENGINE'], s.CHANNEL_LAYERS['default']['BACKEND']"
    )

    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "conference.layers.InProcessChannelLayer",
    ]


def test_a_wildcard_allowed_host_does_not_become_an_allowed_websocket_origin():
    result = django_settings(
        "s.WEBSOCKET_ALLOWED_ORIGINS",
        DJANGO_ALLOWED_HOSTS="*",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://meet.example.com",
    )

    assert result.stdout.strip() == "['https://meet.example.com']"
