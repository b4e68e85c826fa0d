"""The access rule, table-driven: who may join which room when, and as what."""

import datetime as dt

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.utils import timezone

from rooms import selectors, services
from rooms.models import Role, Room
from tests.factories import MeetingFactory, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db

# A week ahead, so that invitations made "now" in the tests are still valid at the meeting.
START = (timezone.now() + dt.timedelta(days=7)).replace(minute=0, second=0, microsecond=0)
END = START + dt.timedelta(hours=1)
BEFORE = START - dt.timedelta(minutes=11)  # the room opens 10 minutes before
OPENING = START - dt.timedelta(minutes=10)
INSIDE = START + dt.timedelta(minutes=30)
AFTER = END


class World:
    """A room with one meeting, its owner, and the people the cases need."""

    def __init__(self):
        self.owner = UserFactory(username="owner")
        self.room = RoomFactory(owner=self.owner, name="Team", access=Room.Access.INVITED)
        self.meeting = MeetingFactory(room=self.room, starts_at=START, ends_at=END)
        self.stranger = UserFactory(username="stranger")

    def invitee(self, **invitation):
        user = UserFactory()
        services.invitation_create(
            room=self.room, created_by=self.owner, email=user.email, **invitation
        )
        return user

    def guest(self, **invitation):
        invitation.setdefault("allow_guests", True)
        found, token = services.invitation_create(
            room=self.room, created_by=self.owner, **invitation
        )
        _, guest = services.invitation_redeem(token=token, guest_name="Gail")
        return found, guest


def decide(world, *, at=INSIDE, user=None, guest=None, room=None):
    return selectors.join_decision(
        room or world.room, user=user or (None if guest else AnonymousUser()), guest=guest, at=at
    )


def allowed(role, *, lobby=False):
    return ("allowed", role, lobby)


def refused(code):
    return ("refused", code)


def outcome(decision):
    if decision.allowed:
        return ("allowed", decision.role, decision.lobby)
    return ("refused", decision.code)


def owner_inside(w):
    return decide(w, user=w.owner)


def owner_before_window(w):
    return decide(w, user=w.owner, at=BEFORE - dt.timedelta(days=3))


def owner_in_locked_room(w):
    services.room_set_locked(room=w.room, locked=True)
    return decide(w, user=w.owner, at=BEFORE)


def co_host_before_window(w):
    co_host = UserFactory()
    services.co_host_add(room=w.room, user=co_host)
    return decide(w, user=co_host, at=BEFORE)


def co_host_by_invitation_in_locked_room(w):
    co_host = w.invitee(role=Role.COHOST)
    services.room_set_locked(room=w.room, locked=True)
    return decide(w, user=co_host, at=BEFORE)


def invitee_inside(w):
    return decide(w, user=w.invitee())


def invitee_inside_with_lobby(w):
    services.room_update(room=w.room, lobby_enabled=True)
    return decide(w, user=w.invitee())


def invitee_before_window(w):
    return decide(w, user=w.invitee(), at=BEFORE)


def invitee_as_window_opens(w):
    return decide(w, user=w.invitee(), at=OPENING)


def invitee_after_meeting(w):
    return decide(w, user=w.invitee(), at=AFTER)


def invitee_with_revoked_invitation(w):
    user = UserFactory()
    invitation, _ = services.invitation_create(room=w.room, created_by=w.owner, email=user.email)
    services.invitation_revoke(invitation=invitation)
    return decide(w, user=user)


def invitee_with_expired_invitation(w):
    return decide(w, user=w.invitee(expires_at=START), at=INSIDE)


def invitee_of_another_meeting(w):
    later = MeetingFactory(room=w.room, starts_at=START + dt.timedelta(days=1))
    return decide(w, user=w.invitee(meeting=later), at=INSIDE)


def invitee_in_locked_room(w):
    user = w.invitee()
    services.room_set_locked(room=w.room, locked=True)
    return decide(w, user=user)


def banned_invitee(w):
    user = w.invitee()
    services.ban_create(room=w.room, user=user, expires_at=END)
    return decide(w, user=user)


def invitee_after_ban_expired(w):
    user = w.invitee()
    services.ban_create(room=w.room, user=user, expires_at=START)
    return decide(w, user=user)


def other_member_of_invited_room(w):
    return decide(w, user=w.stranger)


def other_member_of_members_room(w):
    services.room_update(room=w.room, access=Room.Access.MEMBERS)
    return decide(w, user=w.stranger)


def other_member_of_members_room_with_lobby(w):
    services.room_update(room=w.room, access=Room.Access.MEMBERS, lobby_enabled=True)
    return decide(w, user=w.stranger)


def link_redeemer_with_lobby(w):
    services.room_update(room=w.room, lobby_enabled=True)
    _, token = services.invitation_create(room=w.room, created_by=w.owner)
    services.invitation_redeem(token=token, user=w.stranger)
    return decide(w, user=w.stranger)


def anonymous(w):
    return decide(w)


def guest_with_valid_link(w):
    _, guest = w.guest()
    return decide(w, guest=guest)


def guest_with_valid_link_and_lobby(w):
    services.room_update(room=w.room, lobby_enabled=True)
    _, guest = w.guest()
    return decide(w, guest=guest)


def guest_whose_link_expired(w):
    _, guest = w.guest(expires_at=START)
    return decide(w, guest=guest, at=INSIDE)


def guest_whose_link_was_revoked(w):
    invitation, guest = w.guest()
    services.invitation_revoke(invitation=invitation)
    return decide(w, guest=guest)


def guest_of_another_room(w):
    _, guest = w.guest()
    other = RoomFactory(owner=w.owner)
    return decide(w, guest=guest, room=other)


def banned_guest(w):
    _, guest = w.guest()
    services.ban_create(room=w.room, guest=guest)
    return decide(w, guest=guest)


def guest_before_window(w):
    _, guest = w.guest()
    return decide(w, guest=guest, at=BEFORE)


def room_without_meetings(w):
    services.meeting_cancel(meeting=w.meeting)
    return decide(w, user=w.invitee(), at=BEFORE - dt.timedelta(days=30))


def no_such_room(w):
    return selectors.join_decision(None, user=w.owner)


def invitee_of_a_cancelled_meeting(w):
    user = w.invitee(meeting=w.meeting)
    services.meeting_cancel(meeting=w.meeting)
    return decide(w, user=user)


def invitee_of_a_cancelled_meeting_long_before(w):
    """The room has no meetings left; an invitation to one meeting still opens nothing."""
    user = w.invitee(meeting=w.meeting)
    services.meeting_cancel(meeting=w.meeting)
    return decide(w, user=user, at=BEFORE - dt.timedelta(days=30))


def guest_of_a_cancelled_meetings_link(w):
    _, guest = w.guest(meeting=w.meeting)
    services.meeting_cancel(meeting=w.meeting)
    return decide(w, guest=guest)


def someone_else_in_a_banned_browser(w):
    services.ban_create(room=w.room, user=w.invitee(), browser="browser-hash", expires_at=END)
    return selectors.join_decision(w.room, user=w.invitee(), browser="browser-hash", at=INSIDE)


def invitee_after_a_host_ended_the_call(w):
    w.room.ended_at = INSIDE - dt.timedelta(minutes=5)
    return decide(w, user=w.invitee())


def invitee_after_the_call_was_ended_before_this_window(w):
    w.room.ended_at = OPENING - dt.timedelta(minutes=1)
    return decide(w, user=w.invitee())


def owner_after_ending_the_call(w):
    w.room.ended_at = INSIDE
    return decide(w, user=w.owner, at=INSIDE)


def invitee_of_an_ended_room_without_meetings(w):
    services.meeting_cancel(meeting=w.meeting)
    w.room.ended_at = BEFORE
    return decide(w, user=w.invitee())


CASES = [
    (owner_inside, allowed(Role.HOST)),
    (owner_before_window, allowed(Role.HOST)),
    (owner_in_locked_room, allowed(Role.HOST)),
    (co_host_before_window, allowed(Role.COHOST)),
    (co_host_by_invitation_in_locked_room, allowed(Role.COHOST)),
    (invitee_inside, allowed(Role.PARTICIPANT)),
    (invitee_inside_with_lobby, allowed(Role.PARTICIPANT, lobby=False)),
    (invitee_before_window, refused(selectors.TOO_EARLY)),
    (invitee_as_window_opens, allowed(Role.PARTICIPANT)),
    (invitee_after_meeting, refused(selectors.MEETING_OVER)),
    (invitee_with_revoked_invitation, refused(selectors.NOT_ALLOWED)),
    (invitee_with_expired_invitation, refused(selectors.NOT_ALLOWED)),
    (invitee_of_another_meeting, refused(selectors.TOO_EARLY)),
    (invitee_in_locked_room, refused(selectors.LOCKED)),
    (banned_invitee, refused(selectors.KICKED)),
    (invitee_after_ban_expired, allowed(Role.PARTICIPANT)),
    (other_member_of_invited_room, refused(selectors.NOT_ALLOWED)),
    (other_member_of_members_room, allowed(Role.PARTICIPANT)),
    (other_member_of_members_room_with_lobby, allowed(Role.PARTICIPANT, lobby=True)),
    (link_redeemer_with_lobby, allowed(Role.PARTICIPANT, lobby=True)),
    (anonymous, refused(selectors.NOT_SIGNED_IN)),
    (guest_with_valid_link, allowed(Role.PARTICIPANT)),
    (guest_with_valid_link_and_lobby, allowed(Role.PARTICIPANT, lobby=True)),
    (guest_whose_link_expired, refused(selectors.NOT_ALLOWED)),
    (guest_whose_link_was_revoked, refused(selectors.NOT_ALLOWED)),
    (guest_of_another_room, refused(selectors.NOT_ALLOWED)),
    (banned_guest, refused(selectors.KICKED)),
    (guest_before_window, refused(selectors.TOO_EARLY)),
    (room_without_meetings, allowed(Role.PARTICIPANT)),
    (no_such_room, refused(selectors.NO_SUCH_ROOM)),
    (invitee_of_a_cancelled_meeting, refused(selectors.MEETING_OVER)),
    (invitee_of_a_cancelled_meeting_long_before, refused(selectors.MEETING_OVER)),
    (guest_of_a_cancelled_meetings_link, refused(selectors.MEETING_OVER)),
    (someone_else_in_a_banned_browser, refused(selectors.KICKED)),
    (invitee_after_the_call_was_ended_before_this_window, allowed(Role.PARTICIPANT)),
    (owner_after_ending_the_call, allowed(Role.HOST)),
    (invitee_of_an_ended_room_without_meetings, refused(selectors.ENDED)),
    (invitee_after_a_host_ended_the_call, refused(selectors.ENDED)),
]


@pytest.mark.parametrize(("case", "expected"), CASES, ids=[case.__name__ for case, _ in CASES])
def test_access_rule(case, expected, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        world = World()
        assert outcome(case(world)) == expected


def test_too_early_says_when_the_room_opens():
    world = World()
    decision = decide(world, user=world.invitee(), at=BEFORE)

    assert decision.opens_at == OPENING
    assert OPENING.isoformat() in decision.message


def test_the_decision_names_the_occurrence_it_is_for():
    world = World()
    decision = decide(world, user=world.invitee(), at=INSIDE)

    assert decision.occurrence.meeting == world.meeting
    assert decision.occurrence.starts_at == START


@pytest.mark.parametrize(
    ("invitation", "code"),
    [
        ({"max_uses": 1}, "used_up"),
        ({"expires_at": timezone.now() - dt.timedelta(minutes=1)}, "expired"),
        ({"allow_guests": False}, "sign_in"),
    ],
    ids=["used-up", "expired", "no-guests"],
)
def test_a_guest_cannot_redeem_an_unusable_link(invitation, code):
    world = World()
    invitation = {"allow_guests": True, **invitation}
    _, token = services.invitation_create(room=world.room, created_by=world.owner, **invitation)
    if invitation.get("max_uses") == 1:
        services.invitation_redeem(token=token, guest_name="First")

    with pytest.raises(ValidationError) as error:
        services.invitation_redeem(token=token, guest_name="Second")

    assert error.value.code == code


def test_a_revoked_link_cannot_be_redeemed():
    world = World()
    invitation, token = services.invitation_create(
        room=world.room, created_by=world.owner, allow_guests=True
    )
    services.invitation_revoke(invitation=invitation)

    with pytest.raises(ValidationError) as error:
        services.invitation_redeem(token=token, guest_name="Late")

    assert error.value.code == "revoked"


def test_redeeming_twice_as_the_same_user_uses_the_link_once():
    world = World()
    invitation, token = services.invitation_create(
        room=world.room, created_by=world.owner, max_uses=2
    )

    services.invitation_redeem(token=token, user=world.stranger)
    services.invitation_redeem(token=token, user=world.stranger)

    invitation.refresh_from_db()
    assert invitation.use_count == 1
