"""
Invitations: who they reach and who they let in.

An unconfirmed address inherits nothing; a personal invitation is for its addressee alone;
redeeming links and making guests is limited per client address and per link; a link a removed
guest came by lets no new guest in.
"""

import datetime as dt
import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from rooms import selectors, services
from rooms.models import Ban, Guest, Invitation, Redemption, Role, Room
from tests.conftest import django_settings
from tests.factories import MeetingFactory, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db

CONFIRM_NOTICE = "Confirm your email address to see the invitations sent to it."
NOT_YOURS = (
    "This invitation is for someone else. Sign in as the person it was sent to, or ask the "
    "host for access."
)
BLOCKED = (
    "A guest who came by this link was removed from the call, so it lets no new guests in. "
    "Ask the host for a new link."
)
TOO_MANY_TRIES = "Too many tries at invitation links came from your network just now."


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """Start and leave every test with no request counted against any client address."""
    cache.clear()
    yield
    cache.clear()


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def link_path(token: str) -> str:
    return reverse("rooms:invitation", args=[token])


def invite_by_email(host_client: Client, room: Room, address: str, role: str = "participant"):
    """Invite an address the way a host does, through the room's invitations page."""
    host_client.post(
        reverse("rooms:invitations", args=[room.slug]),
        {"email-emails": address, "email-role": role},
    )
    return Invitation.objects.get(room=room, email=address)


# --- 1. Only a confirmed address matches an invitation --------------------------------------


def test_an_unconfirmed_address_inherits_no_invitation_until_it_is_confirmed():
    host = UserFactory(username="hana")
    room = RoomFactory(owner=host, lobby_enabled=True)
    MeetingFactory(
        room=room, title="Budget review", starts_at=timezone.now() + dt.timedelta(hours=1)
    )
    invitation = invite_by_email(signed_in(host), room, "carol@example.com")
    impostor = UserFactory(username="notcarol", email="carol@example.com", verified_email=False)
    client = signed_in(impostor)

    dashboard = client.get(reverse("rooms:dashboard")).text
    decision = selectors.join_decision(
        room, user=impostor, at=timezone.now() + dt.timedelta(hours=1)
    )

    assert invitation.user is None
    assert "Budget review" not in dashboard
    assert CONFIRM_NOTICE in dashboard
    assert not decision.allowed
    assert decision.code == selectors.NOT_ALLOWED
    assert not invitation.addresses(impostor)

    EmailAddress.objects.filter(user=impostor).update(verified=True)

    dashboard = client.get(reverse("rooms:dashboard")).text
    decision = selectors.join_decision(
        room, user=impostor, at=timezone.now() + dt.timedelta(hours=1)
    )
    assert "Budget review" in dashboard
    assert CONFIRM_NOTICE not in dashboard
    assert decision.allowed
    assert decision.lobby is False  # personally invited: no lobby


def test_an_unconfirmed_address_does_not_skip_the_lobby_of_a_members_room():
    host = UserFactory()
    room = RoomFactory(owner=host, access=Room.Access.MEMBERS, lobby_enabled=True)
    services.invitation_create(room=room, created_by=host, email="carol@example.com")
    unconfirmed = UserFactory(email="carol@example.com", verified_email=False)
    confirmed_elsewhere = UserFactory(email="Carol@Example.com", verified_email=None)
    EmailAddress.objects.create(user=confirmed_elsewhere, email="carol@example.org", verified=True)

    assert selectors.join_decision(room, user=unconfirmed).lobby is True
    assert selectors.join_decision(room, user=confirmed_elsewhere).lobby is True

    EmailAddress.objects.filter(user=unconfirmed).update(verified=True)
    assert selectors.join_decision(room, user=unconfirmed).lobby is False


def test_an_address_confirmed_in_another_letter_case_matches():
    host = UserFactory()
    room = RoomFactory(owner=host)
    services.invitation_create(room=room, created_by=host, email="Dana@Example.com")
    dana = UserFactory(email="dana@example.com")

    assert selectors.join_decision(room, user=dana).allowed
    assert list(selectors.rooms_of(dana)) == [room]


def test_inviting_by_email_binds_only_an_account_that_confirmed_the_address():
    host = UserFactory()
    room = RoomFactory(owner=host)
    confirmed = UserFactory(email="ian@example.com")
    UserFactory(email="carol@example.com", verified_email=False)

    signed_in(host).post(
        reverse("rooms:invitations", args=[room.slug]),
        {"email-emails": "ian@example.com\ncarol@example.com", "email-role": "cohost"},
    )

    assert Invitation.objects.get(room=room, email="ian@example.com").user == confirmed
    assert Invitation.objects.get(room=room, email="carol@example.com").user is None


def test_the_dashboard_sends_the_confirmation_again():
    carol = UserFactory(email="carol@example.com", verified_email=False)
    client = signed_in(carol)
    dashboard = client.get(reverse("rooms:dashboard")).text
    assert CONFIRM_NOTICE in dashboard
    # The form whose button sends the link again: its action, its fields, the button's name.
    form = re.search(
        r'<form method="post" action="([^"]+)"[^>]*>((?:(?!</form>).)*?name="action_send"'
        r"(?:(?!</form>).)*)</form>",
        dashboard,
        re.S,
    )
    assert form, "no button that sends the confirmation again"
    address = re.search(r'name="email" value="([^"]+)"', form.group(2)).group(1)

    client.post(form.group(1), {"email": address, "action_send": ""})

    assert [message.to for message in mail.outbox] == [["carol@example.com"]]
    assert "/accounts/confirm-email/" in mail.outbox[0].body


def test_a_confirmed_user_sees_no_notice(alice_client):
    assert CONFIRM_NOTICE not in alice_client.get(reverse("rooms:dashboard")).text


# --- 2. A personal invitation is for its addressee alone ------------------------------------


def test_another_account_with_an_email_link_is_refused_and_gets_nothing():
    host = UserFactory()
    room = RoomFactory(owner=host)
    _, token = services.invitation_create(
        room=room, created_by=host, email="carol@example.com", role=Role.COHOST
    )
    mallory = UserFactory(username="mallory")
    client = signed_in(mallory)

    page = client.get(link_path(token))
    answer = client.post(link_path(token))

    assert page.status_code == 403
    assert NOT_YOURS in page.text
    assert answer.status_code == 403
    assert NOT_YOURS in answer.text
    assert not Redemption.objects.exists()
    assert not room.is_host(mallory)
    decision = selectors.join_decision(room, user=mallory)
    assert not decision.allowed
    assert decision.code == selectors.NOT_ALLOWED


@pytest.mark.parametrize("addressed_by", ["email", "user"])
def test_the_service_refuses_a_personal_invitation_to_anyone_else(addressed_by):
    host = UserFactory()
    room = RoomFactory(owner=host)
    carol = UserFactory(email="carol@example.com")
    addressee = {"email": carol.email} if addressed_by == "email" else {"user": carol}
    invitation, token = services.invitation_create(room=room, created_by=host, **addressee)

    for stranger in [UserFactory(), UserFactory()]:
        with pytest.raises(ValidationError) as error:
            services.invitation_redeem(token=token, user=stranger)
        assert error.value.code == "not_yours"

    assert services.invitation_redeem(token=token, user=carol) == (invitation, None)
    invitation.refresh_from_db()
    assert invitation.use_count == 0
    assert not Redemption.objects.exists()


def test_an_older_redemption_of_someone_elses_invitation_grants_nothing():
    host = UserFactory()
    room = RoomFactory(owner=host)
    invitation, _ = services.invitation_create(
        room=room, created_by=host, email="carol@example.com", role=Role.COHOST
    )
    mallory = UserFactory()
    Redemption.objects.create(invitation=invitation, user=mallory)  # as the old code allowed

    assert not selectors.join_decision(room, user=mallory).allowed
    assert room not in selectors.rooms_of(mallory)


def test_a_visitor_not_signed_in_is_asked_to_sign_in_as_the_addressee():
    host = UserFactory()
    room = RoomFactory(owner=host)
    _, token = services.invitation_create(
        room=room, created_by=host, email="carol@example.com", allow_guests=True
    )
    visitor = Client()

    page = visitor.get(link_path(token)).text
    visitor.post(link_path(token), {"name": "Carol?"})

    assert "Sign in as them, or sign up with the email address it was sent to." in page
    assert f"{reverse('account_signup')}?next={link_path(token).replace('/', '%2F')}" in page
    assert "email=carol%40example.com" in page
    assert 'name="name"' not in page
    assert not Guest.objects.exists()
    with pytest.raises(ValidationError) as error:
        services.invitation_redeem(token=token, guest_name="Carol?")
    assert error.value.code == "sign_in"


def test_an_open_link_still_takes_any_signed_in_user():
    host = UserFactory()
    room = RoomFactory(owner=host)
    _, token = services.invitation_create(room=room, created_by=host)
    bob = UserFactory()

    response = signed_in(bob).post(link_path(token))

    assert response.status_code == 302
    assert selectors.join_decision(room, user=bob).allowed


# --- 3. Rate limits and the guest cap ---------------------------------------------------------


def test_redeeming_links_in_a_loop_is_refused_past_the_rate_and_keeps_what_was_typed(settings):
    # A day's window: the count cannot start again halfway through the test.
    settings.INVITATION_RATE = "10/d"
    host = UserFactory()
    room = RoomFactory(owner=host)
    _, token = services.invitation_create(room=room, created_by=host, allow_guests=True)

    # Each try from a browser without cookies, as a script would: a new guest every time.
    responses = [Client().post(link_path(token), {"name": f"Gus {n}"}) for n in range(100)]

    statuses = [response.status_code for response in responses]
    assert statuses.count(302) == 10
    assert statuses.count(429) == 90
    assert Guest.objects.count() == 10
    refused = responses[57]
    assert refused["Retry-After"].isdigit()
    assert re.search(r'role="alert">\s*<p>' + re.escape(TOO_MANY_TRIES), refused.text)
    assert 'value="Gus 57"' in refused.text
    assert room.name not in refused.text

    elsewhere = Client(REMOTE_ADDR="198.51.100.7").post(link_path(token), {"name": "Other"})
    assert elsewhere.status_code == 302
    assert Guest.objects.filter(name="Other").exists()


def test_guessing_links_is_refused_past_the_rate_even_for_a_real_link(settings):
    settings.INVITATION_RATE = "5/d"
    host = UserFactory()
    room = RoomFactory(owner=host, name="Secret planning")
    _, token = services.invitation_create(room=room, created_by=host, allow_guests=True)
    guesser = Client()

    assert [guesser.get(link_path(f"guess{n}")).status_code for n in range(5)] == [404] * 5
    refused = guesser.get(link_path("guess5"))
    real = guesser.get(link_path(token))

    assert refused.status_code == 429
    # Past the limit a real link answers as an unknown one does: the guesser learns nothing.
    assert real.status_code == 429
    assert "Secret planning" not in real.text
    assert Client(REMOTE_ADDR="198.51.100.7").get(link_path(token)).status_code == 200


def test_new_guests_from_one_address_are_limited_and_the_name_is_kept(settings):
    settings.INVITATION_GUEST_RATE = "3/d"
    host = UserFactory()
    room = RoomFactory(owner=host)
    _, first = services.invitation_create(room=room, created_by=host, allow_guests=True)
    _, second = services.invitation_create(room=room, created_by=host, allow_guests=True)

    for n, token in enumerate([first, second, first]):
        assert Client().post(link_path(token), {"name": f"Gus {n}"}).status_code == 302
    refused = Client().post(link_path(second), {"name": "Gus the fourth"})

    assert refused.status_code == 429
    assert "Too many guests joined from your network just now." in refused.text
    assert 'value="Gus the fourth"' in refused.text
    assert Guest.objects.count() == 3


def test_a_browser_that_is_a_guest_by_the_link_already_stays_that_guest():
    host = UserFactory()
    room = RoomFactory(owner=host)
    invitation, token = services.invitation_create(
        room=room, created_by=host, allow_guests=True, max_uses=1
    )
    browser = Client()

    browser.post(link_path(token), {"name": "Gus"})
    again = browser.post(link_path(token), {"name": "Gustav"})

    assert again.status_code == 302
    assert list(Guest.objects.values_list("name", flat=True)) == ["Gustav"]
    invitation.refresh_from_db()
    assert invitation.use_count == 1
    assert browser.get(room.get_call_url()).status_code == 200


def test_a_link_lets_in_at_most_the_guest_limit(settings):
    assert settings.INVITATION_GUEST_LIMIT == 100
    host = UserFactory()
    room = RoomFactory(owner=host)
    invitation, token = services.invitation_create(room=room, created_by=host, allow_guests=True)
    for n in range(100):
        services.invitation_redeem(token=token, guest_name=f"Guest {n}")

    response = Client().post(link_path(token), {"name": "One too many"})

    assert response.status_code == 200
    assert "This link has let in 100 guests, as many as one link may." in response.text
    assert 'value="One too many"' in response.text
    assert Guest.objects.filter(invitation=invitation).count() == 100
    invitation.refresh_from_db()
    assert invitation.use_count == 100
    with pytest.raises(ValidationError) as error:
        services.invitation_redeem(token=token, guest_name="Another")
    assert error.value.code == "guest_limit"


def test_the_limits_come_from_the_environment_and_a_bad_one_stops_the_site():
    def run(**env):
        return django_settings(
            "s.INVITATION_RATE, s.INVITATION_GUEST_RATE, s.INVITATION_GUEST_LIMIT", **env
        )

    assert run().stdout.split() == ["10/m", "30/h", "100"]
    custom = run(INVITATION_RATE="5/2m", INVITATION_GUEST_RATE="50/d", INVITATION_GUEST_LIMIT="7")
    assert custom.stdout.split() == ["5/2m", "50/d", "7"]
    broken = run(INVITATION_RATE="ten a minute")
    assert broken.returncode != 0
    assert "INVITATION_RATE must be a count per period" in broken.stderr


# --- 4. A link that a removed guest came by -------------------------------------------------


def test_a_removed_guests_link_lets_no_new_guest_in():
    host = UserFactory()
    room = RoomFactory(owner=host)
    invitation, token = services.invitation_create(room=room, created_by=host, allow_guests=True)
    removed = Client()
    removed.post(link_path(token), {"name": "Troll"})
    staying = Client()
    staying.post(link_path(token), {"name": "Gail"})
    troll = Guest.objects.get(name="Troll")
    Ban.objects.create(room=room, guest=troll, invitation=invitation)

    with pytest.raises(ValidationError) as error:
        services.invitation_redeem(token=token, guest_name="New")
    page = Client().post(link_path(token), {"name": "New"})

    assert error.value.code == "blocked"
    assert error.value.messages == [BLOCKED]
    assert BLOCKED in page.text
    assert not Guest.objects.filter(name="New").exists()
    # A guest who came by the link before keeps it (their own bans are checked elsewhere) ...
    assert staying.post(link_path(token), {"name": "Gail B."}).status_code == 302
    assert set(Guest.objects.values_list("name", flat=True)) == {"Troll", "Gail B."}
    assert selectors.join_decision(room, guest=Guest.objects.get(name="Gail B.")).allowed
    # ... and so does anyone signed in.
    member = UserFactory()
    assert signed_in(member).post(link_path(token)).status_code == 302
    assert Redemption.objects.filter(invitation=invitation, user=member).exists()


def test_a_link_lets_guests_in_again_once_the_ban_is_over():
    host = UserFactory()
    room = RoomFactory(owner=host)
    invitation, token = services.invitation_create(room=room, created_by=host, allow_guests=True)
    _, troll = services.invitation_redeem(token=token, guest_name="Troll")
    Ban.objects.create(
        room=room,
        guest=troll,
        invitation=invitation,
        expires_at=timezone.now() - dt.timedelta(minutes=1),
    )

    _, guest = services.invitation_redeem(token=token, guest_name="Later")

    assert guest.name == "Later"
