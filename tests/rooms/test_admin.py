import csv
import datetime as dt
import io
import re

import pytest
from asgiref.sync import async_to_sync
from django.contrib import admin
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from rooms import services
from rooms.models import (
    Attendance,
    Ban,
    CancelledOccurrence,
    Guest,
    Invitation,
    Meeting,
    Redemption,
    Role,
    Room,
)
from rooms.presence import get_presence
from tests.factories import MeetingFactory, RoomFactory, UserFactory
from tests.rooms.signaling_helpers import pending, receive

pytestmark = pytest.mark.django_db

# A whole-second start, so that the admin's date and time inputs give back the same instant.
TOMORROW_NINE = dt.datetime.combine(
    dt.datetime.now(tz=dt.UTC).date() + dt.timedelta(days=1), dt.time(9), tzinfo=dt.UTC
)


def changelist(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def change_page(obj) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def run_action(client, model, action: str, objects, **extra):
    return client.post(
        changelist(model),
        {"action": action, "_selected_action": [obj.pk for obj in objects], **extra},
        follow=True,
    )


@pytest.fixture
def one_of_each(admin_user):
    """At least one row of every model the rooms and accounts admins show."""
    owner = UserFactory(username="olive")
    invitee = UserFactory(username="ivan")
    room = RoomFactory(owner=owner, name="Weekly sync")
    meeting = MeetingFactory(
        room=room, starts_at=TOMORROW_NINE, recurrence="FREQ=DAILY;COUNT=5", title="Stand-up"
    )
    services.occurrence_cancel(meeting=meeting, starts_at=TOMORROW_NINE + dt.timedelta(days=1))
    invitation, token = services.invitation_create(
        room=room, created_by=owner, allow_guests=True, max_uses=5
    )
    services.invitation_redeem(token=token, user=invitee)
    _, guest = services.invitation_redeem(token=token, guest_name="Gus")
    services.ban_create(room=room, guest=guest, created_by=owner)
    Attendance.objects.create(room=room, meeting=meeting, user=invitee, name="Ivan", role="host")
    return {"room": room, "meeting": meeting, "invitation": invitation, "token": token}


def test_every_admin_page_of_rooms_and_accounts_loads(admin_client, admin_user, one_of_each):
    registered = {
        model: model_admin
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label in {"rooms", "accounts"}
    }
    assert {
        Room,
        Meeting,
        CancelledOccurrence,
        Invitation,
        Guest,
        Redemption,
        Ban,
        Attendance,
    } <= set(registered)
    request = RequestFactory().get("/admin/")
    request.user = admin_user

    failures = []
    for model, model_admin in registered.items():
        obj = model._default_manager.first()
        assert obj is not None, f"no {model.__name__} to open"
        urls = [changelist(model), change_page(obj)]
        if model_admin.has_add_permission(request):
            opts = model._meta
            urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
        for url in urls:
            status = admin_client.get(url).status_code
            if status != 200:
                failures.append((url, status))
    assert failures == []


def test_room_list_searches_and_filters(admin_client):
    alpha = RoomFactory(name="Alpha stand-up", owner=UserFactory(email="ann@corp.example"))
    beta = RoomFactory(name="Beta retro", locked=True, access=Room.Access.MEMBERS)

    def listed(query: str) -> set[Room]:
        response = admin_client.get(changelist(Room) + query)
        assert response.status_code == 200
        return set(response.context["cl"].result_list)

    assert listed("?q=alpha") == {alpha}
    assert listed("?q=ann@corp") == {alpha}
    assert listed(f"?q={beta.slug}") == {beta}
    assert listed("?locked__exact=1") == {beta}
    assert listed("?access__exact=invited") == {alpha}
    assert listed("") == {alpha, beta}


def test_room_list_shows_the_next_occurrence_that_is_not_cancelled(admin_client):
    room = RoomFactory()
    daily = MeetingFactory(room=room, starts_at=TOMORROW_NINE, recurrence="FREQ=DAILY;COUNT=3")
    services.occurrence_cancel(meeting=daily, starts_at=TOMORROW_NINE)
    MeetingFactory(room=room, starts_at=TOMORROW_NINE + dt.timedelta(hours=2))
    services.meeting_cancel(meeting=MeetingFactory(room=room, starts_at=TOMORROW_NINE))

    response = admin_client.get(changelist(Room))

    model_admin = response.context["cl"].model_admin
    [listed] = response.context["cl"].result_list
    assert model_admin.next_meeting(listed) == TOMORROW_NINE + dt.timedelta(hours=2)


def test_room_list_shows_how_each_live_call_carries_video_and_on_which_server(admin_client):
    mesh, sfu = RoomFactory(name="Mesh"), RoomFactory(name="Sfu")
    RoomFactory(name="Quiet")  # nobody in its call
    presence = get_presence()
    for room in (mesh, sfu):
        entry = {"id": f"peer-{room.pk}", "instance": f"page-{room.pk}", "name": "Ann"}
        async_to_sync(presence.admit)(room.slug, entry, limit=12)
    record = {"mode": "sfu", "server": "ws://10.0.0.5:8188", "generation": 1}
    async_to_sync(presence.set_media)(sfu.slug, record)
    try:
        response = admin_client.get(changelist(Room))

        model_admin = response.context["cl"].model_admin
        shown = {
            room.name: model_admin.live_participants(room)
            for room in response.context["cl"].result_list
        }
        assert shown == {"Mesh": "1, peer-to-peer", "Sfu": "1, on ws://10.0.0.5:8188", "Quiet": 0}
        assert b"1, on ws://10.0.0.5:8188" in response.content
    finally:
        for room in (mesh, sfu):
            async_to_sync(presence.remove)(room.slug, f"peer-{room.pk}")


def test_room_list_queries_do_not_grow_with_the_rooms(admin_client):
    def add_rooms(count: int) -> None:
        for _ in range(count):
            meeting = MeetingFactory(starts_at=TOMORROW_NINE, recurrence="FREQ=WEEKLY;COUNT=4")
            services.occurrence_cancel(meeting=meeting, starts_at=TOMORROW_NINE)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(changelist(Room)).status_code == 200
        return len(captured)

    add_rooms(2)
    with_two = queries()
    add_rooms(4)
    assert queries() == with_two


def test_lock_action_locks_and_tells_the_live_calls(
    admin_client, listener, django_capture_on_commit_callbacks
):
    first, second = RoomFactory(), RoomFactory()
    channel = listener(first)

    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(admin_client, Room, "lock_rooms", [first, second])

    assert Room.objects.filter(pk__in=[first.pk, second.pk], locked=True).count() == 2
    assert "Locked 2 rooms." in messages_of(response)
    assert receive(channel) == {"type": "room.locked", "locked": True}
    assert pending(channel) == 0


def test_unlock_action_counts_only_the_rooms_it_changed(
    admin_client, listener, django_capture_on_commit_callbacks
):
    locked, unlocked = RoomFactory(locked=True), RoomFactory()
    locked_channel = listener(locked)

    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(admin_client, Room, "unlock_rooms", [locked, unlocked])

    assert not Room.objects.filter(locked=True).exists()
    assert "Unlocked 1 room." in messages_of(response)
    assert receive(locked_channel) == {"type": "room.locked", "locked": False}


def test_end_call_action_sends_the_end_to_the_live_call(
    admin_client, listener, django_capture_on_commit_callbacks
):
    room = RoomFactory()
    channel = listener(room)

    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(admin_client, Room, "end_calls", [room])

    assert receive(channel) == {"type": "room.end", "by": ""}
    assert "Ended the call, if any, in 1 room." in messages_of(response)
    room.refresh_from_db()
    assert room.ended_at is not None  # the occurrence stays closed to all but hosts


def room_form_data(room: Room, **changes) -> dict:
    data = {
        "owner": room.owner_id,
        "name": room.name,
        "description": room.description,
        "access": room.access,
        "max_participants": room.max_participants,
        "media": room.media,
        "opens_minutes_before": room.opens_minutes_before,
        **changes,
    }
    for prefix in ["meetings", "invitations", "attendances"]:
        data |= {
            f"{prefix}-TOTAL_FORMS": 0,
            f"{prefix}-INITIAL_FORMS": 0,
            f"{prefix}-MIN_NUM_FORMS": 0,
            f"{prefix}-MAX_NUM_FORMS": 1000,
        }
    return data


def test_locking_in_the_room_form_tells_the_live_call(
    admin_client, listener, django_capture_on_commit_callbacks
):
    room = RoomFactory()
    channel = listener(room)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(change_page(room), room_form_data(room, locked="on"))

    assert response.status_code == 302, response.context["adminform"].form.errors
    room.refresh_from_db()
    assert room.locked
    assert receive(channel) == {"type": "room.locked", "locked": True}


def test_room_form_refuses_the_owner_as_co_host(admin_client):
    room = RoomFactory()

    response = admin_client.post(change_page(room), room_form_data(room, co_hosts=[room.owner_id]))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["co_hosts"] == ["The owner is already a host."]
    assert not room.co_hosts.exists()


def test_adding_a_room_gives_it_an_address(admin_client):
    owner = UserFactory()

    data = room_form_data(Room(owner=owner, name="Design review"))
    response = admin_client.post(reverse("admin:rooms_room_add"), data)

    assert response.status_code == 302
    room = Room.objects.get(name="Design review")
    assert room.owner == owner
    assert room.slug.startswith("design-review-")


def meeting_form_data(meeting: Meeting, **changes) -> dict:
    return {
        "title": meeting.title,
        "description": meeting.description,
        "starts_at_0": f"{meeting.starts_at:%Y-%m-%d}",
        "starts_at_1": f"{meeting.starts_at:%H:%M:%S}",
        "ends_at_0": f"{meeting.ends_at:%Y-%m-%d}",
        "ends_at_1": f"{meeting.ends_at:%H:%M:%S}",
        "time_zone": meeting.time_zone,
        "recurrence": meeting.recurrence,
        "cancellations-TOTAL_FORMS": 0,
        "cancellations-INITIAL_FORMS": 0,
        "cancellations-MIN_NUM_FORMS": 0,
        "cancellations-MAX_NUM_FORMS": 1000,
        **changes,
    }


def test_editing_a_meeting_title_raises_its_sequence(
    admin_client, django_capture_on_commit_callbacks
):
    meeting = MeetingFactory(starts_at=TOMORROW_NINE, title="Planning")

    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            change_page(meeting), meeting_form_data(meeting, title="Planning, moved")
        )

    assert response.status_code == 302, response.context["adminform"].form.errors
    meeting.refresh_from_db()
    assert meeting.title == "Planning, moved"
    assert meeting.sequence == 1
    assert meeting.starts_at == TOMORROW_NINE
    assert len(callbacks) == 1  # the update sent to invitees


def test_saving_an_unchanged_meeting_keeps_its_sequence(admin_client):
    meeting = MeetingFactory(starts_at=TOMORROW_NINE)

    response = admin_client.post(change_page(meeting), meeting_form_data(meeting))

    assert response.status_code == 302
    meeting.refresh_from_db()
    assert meeting.sequence == 0


def test_cancelling_an_occurrence_in_the_meeting_form_goes_through_the_service(admin_client):
    meeting = MeetingFactory(starts_at=TOMORROW_NINE, recurrence="FREQ=DAILY;COUNT=3")
    second = TOMORROW_NINE + dt.timedelta(days=1)
    data = meeting_form_data(
        meeting,
        **{
            "cancellations-TOTAL_FORMS": 1,
            "cancellations-0-starts_at_0": f"{second:%Y-%m-%d}",
            "cancellations-0-starts_at_1": f"{second:%H:%M:%S}",
        },
    )

    response = admin_client.post(change_page(meeting), data)

    assert response.status_code == 302
    assert list(meeting.cancellations.values_list("starts_at", flat=True)) == [second]
    meeting.refresh_from_db()
    assert meeting.sequence == 1


def test_the_meeting_form_refuses_a_time_that_is_not_an_occurrence(admin_client):
    meeting = MeetingFactory(starts_at=TOMORROW_NINE, recurrence="FREQ=DAILY;COUNT=3")
    data = meeting_form_data(
        meeting,
        **{
            "cancellations-TOTAL_FORMS": 1,
            "cancellations-0-starts_at_0": f"{TOMORROW_NINE:%Y-%m-%d}",
            "cancellations-0-starts_at_1": "10:30:00",
        },
    )

    response = admin_client.post(change_page(meeting), data)

    assert response.status_code == 200
    assert "The meeting has no occurrence at that time." in response.text
    assert not meeting.cancellations.exists()


def test_the_meeting_form_refuses_a_broken_rule(admin_client):
    meeting = MeetingFactory(starts_at=TOMORROW_NINE)

    response = admin_client.post(
        change_page(meeting), meeting_form_data(meeting, recurrence="FREQ=SOMETIMES")
    )

    assert response.status_code == 200
    assert "recurrence" in response.context["adminform"].form.errors
    meeting.refresh_from_db()
    assert meeting.recurrence == ""


def test_adding_a_meeting_schedules_it(admin_client, admin_user):
    room = RoomFactory()
    data = meeting_form_data(
        Meeting(
            title="Kick-off",
            starts_at=TOMORROW_NINE,
            ends_at=TOMORROW_NINE + dt.timedelta(hours=1),
            time_zone="Europe/Berlin",
        ),
        room=room.pk,
    )

    response = admin_client.post(reverse("admin:rooms_meeting_add"), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    meeting = Meeting.objects.get(title="Kick-off")
    assert meeting.room == room
    assert meeting.created_by == admin_user
    assert meeting.sequence == 0


def test_cancel_meetings_action_cancels_them(admin_client, django_capture_on_commit_callbacks):
    meeting = MeetingFactory()
    already = MeetingFactory()
    services.meeting_cancel(meeting=already)

    with django_capture_on_commit_callbacks() as callbacks:
        response = run_action(admin_client, Meeting, "cancel_meetings", [meeting, already])

    meeting.refresh_from_db()
    assert meeting.cancelled_at is not None
    assert meeting.sequence == 1
    assert len(callbacks) == 1  # the cancellation sent to invitees, once
    assert "Cancelled 1 meeting." in messages_of(response)


def test_meeting_list_filters_on_cancelled(admin_client):
    kept = MeetingFactory()
    dropped = services.meeting_cancel(meeting=MeetingFactory())

    def listed(query: str) -> set[Meeting]:
        return set(admin_client.get(changelist(Meeting) + query).context["cl"].result_list)

    assert listed("?cancelled=yes") == {dropped}
    assert listed("?cancelled=no") == {kept}


def test_revoke_action_revokes_invitations(admin_client):
    room = RoomFactory()
    invitation, _ = services.invitation_create(room=room, created_by=room.owner)

    response = run_action(admin_client, Invitation, "revoke_invitations", [invitation])

    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    assert "Revoked 1 invitation." in messages_of(response)
    assert set(
        admin_client.get(changelist(Invitation) + "?revoked=yes").context["cl"].result_list
    ) == {invitation}


def test_invitation_pages_never_show_the_token_or_its_hash(admin_client):
    room = RoomFactory()
    invitation, token = services.invitation_create(
        room=room, created_by=room.owner, email="guest@example.com"
    )

    for url in [changelist(Invitation), change_page(invitation), change_page(room)]:
        response = admin_client.get(url)
        assert response.status_code == 200
        assert invitation.token_hash not in response.text
        assert token not in response.text
    assert admin_client.get(reverse("admin:rooms_invitation_add")).status_code == 403


def test_attendance_is_read_only(admin_client):
    room = RoomFactory()
    attendance = Attendance.objects.create(room=room, name="Ann", role=Role.PARTICIPANT)

    response = admin_client.post(change_page(attendance), {"name": "Someone else"})

    assert response.status_code == 403
    attendance.refresh_from_db()
    assert attendance.name == "Ann"
    assert admin_client.get(reverse("admin:rooms_attendance_add")).status_code == 403


def test_csv_export_lists_attendance_and_defuses_formulas(admin_client):
    room = RoomFactory(name="Board")
    meeting = MeetingFactory(room=room, title="Quarterly", starts_at=TOMORROW_NINE)
    guest_invitation, token = services.invitation_create(
        room=room, created_by=room.owner, allow_guests=True
    )
    _, guest = services.invitation_redeem(token=token, guest_name="-1+1")
    joined = TOMORROW_NINE - dt.timedelta(minutes=5)
    signed_in = Attendance.objects.create(
        room=room,
        meeting=meeting,
        occurrence_starts_at=TOMORROW_NINE,
        user=room.owner,
        name='=HYPERLINK("https://evil.example","click")',
        role=Role.HOST,
        joined_at=joined,
        left_at=joined + dt.timedelta(minutes=65, seconds=30),
    )
    still_in = Attendance.objects.create(
        room=room, guest=guest, name="@guest", role=Role.PARTICIPANT, joined_at=TOMORROW_NINE
    )

    response = run_action(admin_client, Attendance, "export_csv", [signed_in, still_in])

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows == [
        [
            "name",
            "user",
            "guest",
            "room",
            "meeting",
            "occurrence start",
            "role",
            "joined",
            "left",
            "duration seconds",
        ],
        [
            '\'=HYPERLINK("https://evil.example","click")',
            room.owner.username,
            "",
            "Board",
            "Quarterly",
            TOMORROW_NINE.isoformat(),
            "Host",
            joined.isoformat(),
            (joined + dt.timedelta(minutes=65, seconds=30)).isoformat(),
            "3930",
        ],
        [
            "'@guest",
            "",
            "'-1+1",
            "Board",
            "",
            "",
            "Participant",
            TOMORROW_NINE.isoformat(),
            "",
            "",
        ],
    ]
    assert guest_invitation.token_hash not in response.content.decode()


def test_attendance_list_filters_and_searches(admin_client):
    room, other_room = RoomFactory(name="Lab"), RoomFactory(name="Studio")
    ann = Attendance.objects.create(room=room, name="Ann", role=Role.HOST)
    bob = Attendance.objects.create(room=other_room, name="Bob", role=Role.PARTICIPANT)

    def listed(query: str) -> set[Attendance]:
        return set(admin_client.get(changelist(Attendance) + query).context["cl"].result_list)

    assert listed(f"?room__id__exact={room.pk}") == {ann}
    assert listed("?role__exact=participant") == {bob}
    assert listed("?q=studio") == {bob}


def test_the_attendance_list_says_who_was_in_which_call_and_when_on_the_24_hour_clock(
    admin_client,
):
    room = RoomFactory(name="Lab")
    meeting = MeetingFactory(room=room, title="Review", starts_at=TOMORROW_NINE)
    joined = TOMORROW_NINE + dt.timedelta(hours=5, minutes=2)
    Attendance.objects.create(
        room=room,
        meeting=meeting,
        name="Ann",
        role=Role.HOST,
        joined_at=joined,
        left_at=joined + dt.timedelta(minutes=40, seconds=5),
    )
    Attendance.objects.create(room=room, name="Bob", role=Role.PARTICIPANT, joined_at=joined)

    page = admin_client.get(changelist(Attendance)).content.decode()

    table = page.split('id="result_list"')[1]
    headers = re.findall(r'<div class="text">(?:<a [^>]*>|<span>)([^<]+)<', table)
    assert headers == ["Name", "Role", "Call", "Present", "Duration"]
    day = f"{joined:%-d %b %Y}"
    assert f'<td class="field-present">{day}, 14:02–14:42</td>' in page
    assert f'<td class="field-present">{day}, 14:02–…</td>' in page
    assert '<td class="field-call">Lab · Review</td>' in page
    assert "p.m." not in page


def test_the_admin_index_names_each_section_once(admin_client):
    page = admin_client.get(reverse("admin:index")).content.decode()

    sections = re.findall(r"<caption>\s*<a [^>]*>([^<]+)</a>", page)
    # Ours holds the users, allauth's ("Accounts") their email addresses.
    assert {"Users", "Accounts"} <= set(sections)
    assert len(sections) == len(set(sections)), sections


def test_deleting_a_room_ends_its_call(admin_client, listener, django_capture_on_commit_callbacks):
    room = RoomFactory()
    channel = listener(room)
    delete_page = reverse("admin:rooms_room_delete", args=[room.pk])
    assert admin_client.get(delete_page).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(delete_page, {"post": "yes"})

    assert response.status_code == 302
    assert not Room.objects.filter(pk=room.pk).exists()
    assert receive(channel) == {"type": "room.end", "by": ""}
