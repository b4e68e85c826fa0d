"""Races that only a real database with concurrent connections can show: run on PostgreSQL."""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from rooms import services
from rooms.models import Guest, Invitation
from tests.factories import RoomFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

REQUESTS = 50


def test_the_suite_runs_this_on_postgresql():
    assert connection.vendor == "postgresql"


def test_a_one_use_invitation_redeemed_by_50_concurrent_requests_admits_exactly_one():
    room = RoomFactory()
    invitation, token = services.invitation_create(
        room=room, created_by=room.owner, allow_guests=True, max_uses=1
    )
    barrier = threading.Barrier(REQUESTS)
    outcomes = []
    lock = threading.Lock()

    def redeem(number: int) -> None:
        try:
            barrier.wait(timeout=30)
            services.invitation_redeem(token=token, guest_name=f"Guest {number}")
            result = "joined"
        except ValidationError as error:
            result = error.code
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=redeem, args=(n,)) for n in range(REQUESTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(outcomes) == ["joined"] + ["used_up"] * (REQUESTS - 1)
    invitation.refresh_from_db()
    assert invitation.use_count == 1
    assert Guest.objects.filter(invitation=invitation).count() == 1
    assert Invitation.objects.get(pk=invitation.pk).is_used_up
