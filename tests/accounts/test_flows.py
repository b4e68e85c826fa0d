import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.urls import reverse

from accounts.models import User
from rooms import selectors, services
from tests.factories import PASSWORD, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db

SIGNUP = {
    "username": "carol",
    "email": "carol@example.com",
    "password1": "a long and unusual passphrase",
    "password2": "a long and unusual passphrase",
    "display_name": "Carol K.",
    "time_zone": "Europe/Berlin",
}


def error_beside(html: str, field: str) -> str:
    """Return the text of the error list rendered beside a field, which must point at it."""
    assert f'aria-describedby="id_{field}_error"' in html or (
        f'aria-describedby="id_{field}_helptext id_{field}_error"' in html
    ), f"the {field} input does not point at its error"
    match = re.search(rf'id="id_{field}_error">(.*?)</(ul|div)>', html, re.S)
    assert match, f"no error beside {field}"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def confirmation_link(message) -> str:
    """Return the path of the confirmation link in a mail allauth sent."""
    link = re.search(r"https?://[^/\s]+(/accounts/confirm-email/\S+)", message.body)
    assert link, message.body
    return link.group(1)


def test_sign_up_confirms_the_address_then_signs_in_and_keeps_the_profile(client):
    response = client.post(reverse("account_signup"), SIGNUP, follow=True)

    user = User.objects.get(username="carol")
    assert user.display_name == "Carol K."
    assert user.time_zone == "Europe/Berlin"
    assert user.check_password(SIGNUP["password1"])
    # Not in until the address is confirmed: anyone can type anyone's address.
    assert not response.context["user"].is_authenticated
    assert "Confirm your email address" in response.text
    assert [message.to for message in mail.outbox] == [["carol@example.com"]]

    link = confirmation_link(mail.outbox[0])
    assert "Confirm" in client.get(link).text
    response = client.post(link, follow=True)

    assert response.context["user"] == user
    assert "Signed in as Carol K." in response.text
    assert EmailAddress.objects.get(user=user, email="carol@example.com").verified


def test_an_invitee_signs_up_from_the_invitation_and_lands_on_it(
    client, django_capture_on_commit_callbacks
):
    host = UserFactory(username="hana")
    room = RoomFactory(owner=host, name="Budget review")
    with django_capture_on_commit_callbacks(execute=True):
        _, token = services.invitation_create(room=room, created_by=host, email="carol@example.com")
    invitation_path = reverse("rooms:invitation", args=[token])
    mail.outbox.clear()

    page = client.get(invitation_path).text
    signup_url = re.search(r'href="(/accounts/signup/\?[^"]+)"', page).group(1)
    form = client.get(signup_url.replace("&amp;", "&"))
    assert form.context["form"]["email"].value() == "carol@example.com"
    client.post(signup_url.replace("&amp;", "&"), SIGNUP)
    response = client.post(confirmation_link(mail.outbox[0]), follow=True)

    assert response.redirect_chain[-1][0] == invitation_path
    assert "Your answer: No answer yet" in response.text
    carol = User.objects.get(username="carol")
    assert selectors.join_decision(room, user=carol).allowed


def test_signing_in_with_an_unconfirmed_address_sends_a_new_link(client):
    UserFactory(username="carol", email="carol@example.com", verified_email=False)

    response = client.post(
        reverse("account_login"), {"login": "carol", "password": PASSWORD}, follow=True
    )

    assert not response.context["user"].is_authenticated
    assert "Confirm your email address" in response.text
    assert [message.to for message in mail.outbox] == [["carol@example.com"]]


def test_the_email_page_sends_the_link_again_for_the_address_it_shows(client):
    carol = UserFactory(email="carol@example.com", verified_email=False)
    client.force_login(carol)

    page = client.get(reverse("account_email")).text
    radio = re.search(r'<input type="radio"[^>]*>', page).group(0)
    assert 'value="carol@example.com"' in radio
    # Ticked already: "Re-send" must have an address to send to without a click on it.
    assert " checked" in radio
    assert "Unverified" in page
    client.post(reverse("account_email"), {"email": "carol@example.com", "action_send": ""})

    assert [message.to for message in mail.outbox] == [["carol@example.com"]]


def test_sign_up_with_mismatched_passwords_says_so_beside_the_field(client):
    response = client.post(reverse("account_signup"), {**SIGNUP, "password2": "something else"})

    assert response.status_code == 200
    assert "same password" in error_beside(response.text, "password2")
    assert not User.objects.filter(username="carol").exists()


def test_the_sign_up_page_proposes_the_browsers_time_zone_until_the_form_is_sent(client):
    """time-zone.js sets the marked field (tests/browser/test_sign_up.py watches it do so)."""
    fresh = client.get(reverse("account_signup")).text
    sent_back = client.post(reverse("account_signup"), {**SIGNUP, "password2": "other"}).text

    assert re.search(r'<select name="time_zone" data-propose-browser-zone=""', fresh)
    assert '<script type="module" src="/static/js/time-zone.js">' in fresh
    # A form sent back with an error keeps the zone its person chose.
    assert "data-propose-browser-zone" not in sent_back
    assert '<option value="Europe/Berlin" selected>' in sent_back


def test_sign_up_with_a_taken_username_says_so_beside_the_field(client):
    UserFactory(username="carol", email="other@example.com")

    response = client.post(reverse("account_signup"), SIGNUP)

    assert "already" in error_beside(response.text, "username")
    assert User.objects.filter(username="carol").count() == 1


def test_sign_in_with_username_or_email_and_sign_out(client, user):
    response = client.post(
        reverse("account_login"), {"login": "alice", "password": PASSWORD}, follow=True
    )
    assert response.context["user"] == user
    assert "Signed in as Alice Liddell" in response.text

    response = client.post(reverse("account_logout"), follow=True)
    assert not response.context["user"].is_authenticated
    assert "Sign in" in response.text

    response = client.post(
        reverse("account_login"), {"login": "alice@example.com", "password": PASSWORD}, follow=True
    )
    assert response.context["user"] == user


def test_a_wrong_password_is_refused_with_a_message(client, user):
    response = client.post(reverse("account_login"), {"login": "alice", "password": "nope"})

    assert response.status_code == 200
    assert "not correct" in response.text
    assert not response.context["user"].is_authenticated


def test_repeated_failed_sign_ins_are_throttled(client, user):
    for _attempt in range(5):
        client.post(reverse("account_login"), {"login": "alice", "password": "wrong"})

    # Even the right password is refused until the window passes.
    response = client.post(reverse("account_login"), {"login": "alice", "password": PASSWORD})

    assert "Too many failed login attempts" in response.text
    assert not response.context["user"].is_authenticated


def test_profile_update_changes_name_and_time_zone_of_every_page(alice_client, user):
    response = alice_client.post(
        reverse("accounts:profile"),
        {"display_name": "Alice L.", "time_zone": "America/New_York"},
        follow=True,
    )

    user.refresh_from_db()
    assert user.display_name == "Alice L."
    assert user.time_zone == "America/New_York"
    assert "Your profile was saved." in response.text
    assert "Signed in as Alice L." in response.text
    assert "Times are shown in America/New_York" in response.text


def test_profile_refuses_an_unknown_time_zone_beside_the_field(alice_client, user):
    response = alice_client.post(
        reverse("accounts:profile"), {"display_name": "A", "time_zone": "Mars/Olympus"}
    )

    assert "not one of the available choices" in error_beside(response.text, "time_zone")
    user.refresh_from_db()
    assert user.time_zone == "UTC"


def test_profile_needs_a_signed_in_user(client):
    response = client.get(reverse("accounts:profile"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


def test_password_reset_by_email(client, user):
    client.post(reverse("account_reset_password"), {"email": "alice@example.com"})

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["alice@example.com"]
    link = re.search(r"https?://[^/\s]+(/accounts/password/reset/key/\S+)", mail.outbox[0].body)
    assert link, mail.outbox[0].body
    response = client.get(link.group(1), follow=True)
    new_password = "an entirely new passphrase"
    response = client.post(
        response.redirect_chain[-1][0] if response.redirect_chain else link.group(1),
        {"password1": new_password, "password2": new_password},
        follow=True,
    )

    user.refresh_from_db()
    assert user.check_password(new_password)


def test_password_change(alice_client, user):
    new_password = "another long passphrase"
    alice_client.post(
        reverse("account_change_password"),
        {"oldpassword": PASSWORD, "password1": new_password, "password2": new_password},
    )

    user.refresh_from_db()
    assert user.check_password(new_password)


def test_pages_render_user_text_as_text(client):
    UserFactory(username="mallory", display_name="<script>alert(1)</script>")
    client.post(reverse("account_login"), {"login": "mallory", "password": PASSWORD})

    response = client.get(reverse("home"), follow=True)

    assert "Signed in as" in response.text
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
