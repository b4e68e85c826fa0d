"""When sign-up asks for a confirmed address: whenever mail can reach people."""

import subprocess

import pytest

from tests.conftest import django_settings

PRODUCTION = {"DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "x" * 50}


def email_verification(**env: str) -> subprocess.CompletedProcess:
    return django_settings(
        "s.ACCOUNT_EMAIL_VERIFICATION, s.ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION", **env
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "mandatory"),  # development: the console prints the confirmation mail
        (PRODUCTION, "optional"),  # no way to send mail: sign-up stays open
        ({**PRODUCTION, "EMAIL_HOST": "smtp.example.com"}, "mandatory"),
        (
            {**PRODUCTION, "EMAIL_HOST": "smtp.example.com", "ACCOUNT_EMAIL_VERIFICATION": "none"},
            "none",
        ),
        ({"ACCOUNT_EMAIL_VERIFICATION": "optional"}, "optional"),
    ],
    ids=[
        "development",
        "production-without-mail",
        "production-with-mail",
        "override",
        "dev-override",
    ],
)
def test_sign_up_asks_for_a_confirmed_address_where_mail_can_be_sent(env, expected):
    result = email_verification(**env)

    assert result.returncode == 0, result.stderr
    # Confirming from the mail signs the person in, wherever the default lands.
    assert result.stdout.split() == [expected, "True"]


def test_a_misspelt_verification_mode_stops_the_site():
    result = email_verification(ACCOUNT_EMAIL_VERIFICATION="mandatroy")

    assert result.returncode != 0
    assert "ACCOUNT_EMAIL_VERIFICATION must be none, optional or mandatory" in result.stderr
