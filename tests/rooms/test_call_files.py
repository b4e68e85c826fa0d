"""Files shared in calls through the media server: uploaded once, announced, downloaded."""

import datetime as dt
import hashlib
import os
import time

import pytest
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import AsyncClient, Client
from django.urls import reverse
from django.utils import timezone

from rooms import services
from rooms.models import CallFile
from rooms.presence import get_presence
from tests.rooms.signaling_helpers import pending, receive

CONTENT = b"The minutes of the meeting.\n" * 1000


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def seat():
    """Put people in rooms' calls as their connections would; take them out afterwards."""
    presence, seated = get_presence(), []

    def sit(room, peer_id: str, *, user=None, guest=None) -> None:
        entry = {
            "id": peer_id,
            "instance": f"page-{peer_id}",
            "name": peer_id,
            "role": "participant",
            "state": {},
            "channel": "",
            "user_id": user.pk if user else None,
            "guest_id": str(guest.pk) if guest else None,
            "browser": "",
        }
        async_to_sync(presence.admit)(room.slug, entry, limit=50)
        seated.append((room.slug, peer_id))

    yield sit
    for slug, peer_id in seated:
        async_to_sync(presence.remove)(slug, peer_id)


@pytest.fixture
def in_call(call, seat):
    """Ann is in the call as annPeer_1 (and p1), Olga in the other room's as olgaPeer."""
    seat(call.room, "annPeer_1", user=call.ann)
    seat(call.room, "p1", user=call.ann)
    seat(call.other_room, "olgaPeer", user=call.owner)
    return call


def signed_in(user, **client_options) -> Client:
    client = Client(**client_options)
    client.force_login(user)
    return client


def upload_url(room) -> str:
    return reverse("rooms:call_file_upload", kwargs={"slug": room.slug})


def share(client, room, content=CONTENT, *, name="minutes.txt", peer="annPeer_1", **extra):
    upload = SimpleUploadedFile(name, content, content_type="text/plain")
    return client.post(upload_url(room), {"file": upload, "peer": peer}, **extra)


def multipart(*, filename: str, content: bytes, content_type: str, peer: str) -> dict:
    """Return a multipart body written by hand: the test client would strip a path itself."""
    boundary = "call-file-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="peer"\r\n\r\n{peer}\r\n'
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    )
    body = head.encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return {"data": body, "content_type": f"multipart/form-data; boundary={boundary}"}


def stored_files(media_root) -> list[str]:
    folder = media_root / "call-files"
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def test_an_invitee_shares_a_file_and_the_call_is_told(in_call, call, listener, media_root):
    channel = listener(call.room)

    response = share(signed_in(call.ann), call.room, peer="annPeer_1")

    assert response.status_code == 201
    shared = CallFile.objects.get()
    digest = hashlib.sha256(CONTENT).hexdigest()
    url = reverse("rooms:call_file", kwargs={"slug": call.room.slug, "file_id": shared.pk})
    assert response.json() == {
        "id": str(shared.pk),
        "name": "minutes.txt",
        "size": len(CONTENT),
        "mime": "text/plain",
        "sha256": digest,
        "url": url,
    }
    assert (shared.room, shared.user, shared.author_name) == (call.room, call.ann, "Ann")
    assert (shared.size, shared.sha256) == (len(CONTENT), digest)
    # Stored under its id alone, with exactly the bytes sent.
    assert stored_files(media_root) == [shared.pk.hex]
    assert (media_root / "call-files" / shared.pk.hex).read_bytes() == CONTENT

    assert receive(channel) == {
        "type": "call.file",
        "file": {**response.json(), "from": {"id": "annPeer_1", "name": "Ann"}},
    }
    assert pending(channel) == 0


def test_others_in_the_room_download_it_as_an_attachment(in_call, call):
    shared_id = share(signed_in(call.ann), call.room).json()["id"]
    url = reverse("rooms:call_file", kwargs={"slug": call.room.slug, "file_id": shared_id})

    response = signed_in(call.ben).get(url)

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == CONTENT
    assert response["Content-Disposition"] == 'attachment; filename="minutes.txt"'
    assert response["Content-Type"] == "application/octet-stream"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"].split("; ")


def test_a_guest_shares_a_file_under_their_name(call, listener, seat):
    channel = listener(call.room)
    gail = call.guest("Gail")
    seat(call.room, "gailPeer", guest=gail)
    client = Client()
    session = client.session
    session["rooms_guests"] = {str(call.room.pk): str(gail.pk)}
    session.save()

    response = share(client, call.room, peer="gailPeer")

    assert response.status_code == 201
    shared = CallFile.objects.get()
    assert (shared.guest, shared.user, shared.author_name) == (gail, None, "Gail")
    assert receive(channel)["file"]["from"] == {"id": "gailPeer", "name": "Gail"}


@pytest.mark.parametrize(
    ("who", "code"),
    [("stranger", "not-allowed"), ("banned", "kicked"), ("anonymous", "not-signed-in")],
)
def test_people_without_access_can_neither_share_nor_download(
    in_call, call, listener, media_root, who, code
):
    shared_id = share(signed_in(call.ann), call.room).json()["id"]
    url = reverse("rooms:call_file", kwargs={"slug": call.room.slug, "file_id": shared_id})
    if who == "stranger":
        client = signed_in(call.stranger)
    elif who == "banned":
        services.ban_create(room=call.room, user=call.ben, created_by=call.owner)
        client = signed_in(call.ben)
    else:
        client = Client()
    channel = listener(call.room)

    refused = share(client, call.room, b"not wanted", peer="intruder")
    assert (refused.status_code, refused.json()["error"]) == (403, code)
    assert CallFile.objects.count() == 1
    assert stored_files(media_root) == [CallFile.objects.get().pk.hex]
    assert pending(channel) == 0

    downloading = client.get(url)
    assert downloading.status_code == 403
    assert not hasattr(downloading, "streaming_content")


def test_a_file_over_the_limit_is_refused_and_nothing_is_kept(in_call, call, settings, media_root):
    settings.CALL_FILE_MAX_BYTES = 1000
    client = signed_in(call.ann)

    response = share(client, call.room, b"x" * 1001)

    assert response.status_code == 413
    assert response.json()["error"] == "too-large"
    assert "at most" in response.json()["message"]
    assert not CallFile.objects.exists()
    assert stored_files(media_root) == []
    # The limit itself passes.
    assert share(client, call.room, b"x" * 1000).status_code == 201


def test_uploads_and_their_limit_work_through_asgi_as_daphne_serves_them(in_call, call, settings):
    settings.CALL_FILE_MAX_BYTES = len(CONTENT)
    client = AsyncClient()
    client.force_login(call.ann)

    def post(content):
        upload = SimpleUploadedFile("minutes.txt", content, content_type="text/plain")
        return async_to_sync(client.post)(upload_url(call.room), {"file": upload, "peer": "p1"})

    assert post(CONTENT + b"!").status_code == 413
    response = post(CONTENT)
    assert response.status_code == 201
    assert response.json()["sha256"] == hashlib.sha256(CONTENT).hexdigest()
    assert CallFile.objects.count() == 1


def test_an_empty_file_or_none_at_all_is_refused(in_call, call, media_root):
    client = signed_in(call.ann)

    empty = share(client, call.room, b"")
    missing = client.post(upload_url(call.room), {"peer": "annPeer_1"})

    assert (empty.status_code, empty.json()["error"]) == (400, "bad-value")
    assert (missing.status_code, missing.json()["error"]) == (400, "missing-field")
    assert not CallFile.objects.exists()
    assert stored_files(media_root) == []


def test_a_peer_id_that_is_none_is_refused(in_call, call, media_root):
    response = share(signed_in(call.ann), call.room, peer="<b>not a peer</b>")

    assert (response.status_code, response.json()["error"]) == (403, "not-allowed")
    assert not CallFile.objects.exists()
    assert stored_files(media_root) == []


def test_the_upload_checks_csrf_like_any_form(in_call, call):
    client = signed_in(call.ann, enforce_csrf_checks=True)
    client.get(call.room.get_call_url())  # the call page sets the CSRF cookie
    token = client.cookies["csrftoken"].value

    assert share(client, call.room).status_code == 403
    assert not CallFile.objects.exists()
    assert share(client, call.room, HTTP_X_CSRFTOKEN=token).status_code == 201


def test_a_name_with_a_path_or_markup_is_cleaned_and_served_as_a_download(in_call, call):
    page = b"<script>alert(document.cookie)</script>"
    response = signed_in(call.ann).post(
        upload_url(call.room),
        **multipart(
            filename="..\\..\\<img src=x onerror=alert(1)>.html",
            content=page,
            content_type="text/html",
            peer="annPeer_1",
        ),
    )

    assert response.status_code == 201
    assert response.json()["name"] == "img src=x onerror=alert(1).html"
    assert response.json()["mime"] == "text/html"  # what the sender claimed, never served
    download = signed_in(call.ben).get(response.json()["url"])
    assert download["Content-Disposition"] == (
        'attachment; filename="img src=x onerror=alert(1).html"'
    )
    assert download["Content-Type"] == "application/octet-stream"
    assert download["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in download["Content-Security-Policy"].split("; ")
    assert b"".join(download.streaming_content) == page


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\ann\\report.pdf", "report.pdf"),
        ('a<b>"c"|d?.txt', "abcd.txt"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),  # a right-to-left override hides ".exe"
        ("  .hidden  ", "hidden"),
        ("Präsentation  2026\t.odp", "Präsentation 2026 .odp"),
        ("..", "file"),
        ("", "file"),
        ("a" * 300 + ".pdf", "a" * 251 + ".pdf"),
    ],
)
def test_call_file_name(given, kept):
    assert services.call_file_name(given) == kept


def test_a_file_of_another_room_is_not_found(in_call, call):
    shared_id = share(signed_in(call.ann), call.room).json()["id"]
    # The owner may see both rooms: the file is still not the other room's.
    url = reverse("rooms:call_file", kwargs={"slug": call.other_room.slug, "file_id": shared_id})

    assert signed_in(call.owner).get(url).status_code == 404


def test_call_files_delete_removes_a_rooms_files_and_their_data(in_call, call, media_root):
    share(signed_in(call.ann), call.room)
    elsewhere = share(signed_in(call.owner), call.other_room, peer="olgaPeer").json()["id"]

    assert services.call_files_delete(room=call.room) == 1

    assert [str(shared.pk) for shared in CallFile.objects.all()] == [elsewhere]
    assert stored_files(media_root) == [CallFile.objects.get().pk.hex]


def test_clearcallfiles_deletes_old_files_their_data_and_stray_data(in_call, call, media_root):
    client = signed_in(call.ann)
    old = CallFile.objects.get(pk=share(client, call.room).json()["id"])
    new = CallFile.objects.get(pk=share(client, call.room).json()["id"])
    CallFile.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(hours=25))
    # Data no row stands for (its room was deleted): swept once it is as old.
    stray = media_root / "call-files" / "0123456789abcdef0123456789abcdef"
    stray.write_bytes(b"left behind")
    day_ago = time.time() - 25 * 3600
    os.utime(stray, (day_ago, day_ago))

    call_command("clearcallfiles")

    assert list(CallFile.objects.all()) == [new]
    assert stored_files(media_root) == [new.pk.hex]

    call_command("clearcallfiles", "--older-than", "0")

    assert not CallFile.objects.exists()
    assert stored_files(media_root) == []


def test_clearcallfiles_runs_before_any_file_was_shared(db, media_root, capsys):
    call_command("clearcallfiles")

    assert capsys.readouterr().out == "Deleted 0 shared files.\n"
    assert not (media_root / "call-files").exists()


def test_only_people_in_the_call_share_files_and_only_as_themselves(call, seat, media_root):
    seat(call.room, "annPeer_1", user=call.ann)
    seat(call.room, "benPeer", user=call.ben)

    not_in_call = share(signed_in(call.owner), call.room, peer="olgaPeer")
    as_someone_else = share(signed_in(call.ann), call.room, peer="benPeer")

    assert (not_in_call.status_code, not_in_call.json()["error"]) == (403, "not-allowed")
    assert (as_someone_else.status_code, as_someone_else.json()["error"]) == (403, "not-allowed")
    assert CallFile.objects.count() == 0
    assert stored_files(media_root) == []
    assert share(signed_in(call.ann), call.room, peer="annPeer_1").status_code == 201
