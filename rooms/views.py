import calendar as month_calendar
import datetime as dt
import hashlib

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadhandler import SkipFile, StopUpload, TemporaryFileUploadHandler
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST
from django.views.generic import CreateView, DeleteView, ListView, UpdateView
from django_ratelimit.core import get_usage

from accounts.selectors import unconfirmed_emails
from rooms import calendar, live, selectors, services, signaling
from rooms.forms import (
    CoHostForm,
    EmailInvitationForm,
    GuestForm,
    LinkInvitationForm,
    MeetingForm,
    OccurrenceCancelForm,
    RoomForm,
)
from rooms.models import CallFile, Guest, Invitation, Meeting, Room
from rooms.recurrence import occurrences


def form_error(form, error: ValidationError) -> None:
    """Put a service's ValidationError on the form, beside the field it names when it names one."""
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


def hosted_room(request, slug: str) -> Room:
    """Return the room if the signed-in user hosts it (owner or co-host), else 404 or 403."""
    room = get_object_or_404(Room.objects.select_related("owner"), slug=slug)
    if not room.is_host(request.user):
        raise PermissionDenied
    return room


def owned_room(request, slug: str) -> Room:
    """Return the room if the signed-in user owns it, else 404 or 403: for owner-only changes."""
    room = hosted_room(request, slug)
    if room.owner_id != request.user.pk:
        raise PermissionDenied
    return room


def home(request):
    if request.user.is_authenticated:
        return redirect("rooms:dashboard")
    return render(request, "home.html")


@login_required
def dashboard(request):
    """The next 30 days, and the addresses to confirm before invitations sent to them show."""
    now = timezone.now()
    upcoming = selectors.upcoming_occurrences(
        request.user, start=now, end=now + dt.timedelta(days=30)
    )
    return render(
        request,
        "rooms/dashboard.html",
        {
            "occurrences": [occurrence_row(o, now) for o in upcoming],
            "now": now,
            "unconfirmed_emails": unconfirmed_emails(request.user),
        },
    )


def occurrence_row(occurrence, now: dt.datetime) -> dict:
    """Return what the pages show of an occurrence: its times and whether Join is live yet."""
    room = occurrence.meeting.room
    opens_at = occurrence.starts_at - dt.timedelta(minutes=room.opens_minutes_before)
    return {
        "occurrence": occurrence,
        "meeting": occurrence.meeting,
        "room": room,
        "opens_at": opens_at,
        "joinable": opens_at <= now < occurrence.ends_at,
        "running": occurrence.starts_at <= now < occurrence.ends_at,
    }


@login_required
def calendar_view(request):
    """A week or month of the user's occurrences, in their time zone, rendered on the server."""
    zone = timezone.get_current_timezone()
    today = timezone.localdate()
    mode = "month" if request.GET.get("view") == "month" else "week"
    try:
        anchor = (
            dt.date.fromisoformat(request.GET.get("date", "")) if request.GET.get("date") else today
        )
    except ValueError:
        anchor = today
    if mode == "week":
        first = anchor - dt.timedelta(days=anchor.weekday())
        days = [first + dt.timedelta(days=n) for n in range(7)]
        previous, following = first - dt.timedelta(days=7), first + dt.timedelta(days=7)
    else:
        weeks = month_calendar.Calendar().monthdatescalendar(anchor.year, anchor.month)
        days = [day for week in weeks for day in week]
        first = anchor.replace(day=1)
        previous = (first - dt.timedelta(days=1)).replace(day=1)
        following = (first + dt.timedelta(days=32)).replace(day=1)
    start = dt.datetime.combine(days[0], dt.time(), tzinfo=zone)
    end = dt.datetime.combine(days[-1] + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    now = timezone.now()
    by_day = {day: [] for day in days}
    for occurrence in selectors.upcoming_occurrences(request.user, start=start, end=end):
        day = timezone.localtime(occurrence.starts_at).date()
        if day in by_day:
            by_day[day].append(occurrence_row(occurrence, now))
    grid = [
        {
            "date": day,
            "rows": by_day[day],
            "today": day == today,
            "other_month": day.month != anchor.month,
        }
        for day in days
    ]
    weeks = [grid[index : index + 7] for index in range(0, len(grid), 7)]
    return render(
        request,
        "rooms/calendar.html",
        {
            "mode": mode,
            "weeks": weeks,
            "anchor": anchor,
            "previous": previous,
            "following": following,
            "feed_url": request.build_absolute_uri(
                reverse(
                    "rooms:feed",
                    kwargs={"user_id": request.user.pk, "token": calendar.feed_token(request.user)},
                )
            ),
        },
    )


class RoomListView(LoginRequiredMixin, ListView):
    template_name = "rooms/room_list.html"
    context_object_name = "rooms"

    def get_queryset(self):
        return selectors.rooms_of(self.request.user).order_by("name")


class RoomCreateView(LoginRequiredMixin, CreateView):
    form_class = RoomForm
    template_name = "rooms/room_form.html"

    def form_valid(self, form):
        try:
            self.object = services.room_create(owner=self.request.user, **form.cleaned_data)
        except ValidationError as error:
            form_error(form, error)
            return self.form_invalid(form)
        messages.success(self.request, _("Your room is ready."))
        return redirect(self.object)


class RoomUpdateView(LoginRequiredMixin, UpdateView):
    form_class = RoomForm
    template_name = "rooms/room_form.html"

    def get_object(self, queryset=None):
        return hosted_room(self.request, self.kwargs["slug"])

    def form_valid(self, form):
        room = Room.objects.get(pk=self.object.pk)
        try:
            services.room_update(room=room, **form.cleaned_data)
        except ValidationError as error:
            form_error(form, error)
            return self.form_invalid(form)
        messages.success(self.request, _("The room was saved."))
        return redirect(room)


class RoomDeleteView(LoginRequiredMixin, DeleteView):
    template_name = "rooms/room_confirm_delete.html"
    success_url = reverse_lazy("rooms:list")

    def get_object(self, queryset=None):
        return owned_room(self.request, self.kwargs["slug"])

    def form_valid(self, form):
        services.room_delete(room=self.object)
        messages.success(self.request, _("The room was deleted."))
        return redirect(self.success_url)


@login_required
def room_detail(request, slug):
    room = get_object_or_404(Room.objects.select_related("owner"), slug=slug)
    decision = selectors.join_decision(room, user=request.user)
    is_host = room.is_host(request.user)
    if not is_host and decision.code in (selectors.NOT_ALLOWED, selectors.KICKED):
        raise Http404
    now = timezone.now()
    meetings = room.meetings.filter(cancelled_at__isnull=True).prefetch_related("cancellations")
    schedule = [
        occurrence_row(occurrence, now)
        for meeting in meetings
        for occurrence in occurrences(meeting, after=now, before=now + dt.timedelta(days=60))
    ]
    schedule.sort(key=lambda row: row["occurrence"].starts_at)
    context = {
        "room": room,
        "is_host": is_host,
        "decision": decision,
        "schedule": schedule[:20],
        "meetings": meetings,
        "call_url": request.build_absolute_uri(room.get_call_url()),
    }
    if is_host:
        context |= {
            "invitations": room.invitations.select_related("user", "meeting"),
            "co_hosts": room.co_hosts.all(),
            "co_host_form": CoHostForm(),
        }
    return render(request, "rooms/room_detail.html", context)


@login_required
@require_POST
def co_host_add(request, slug):
    room = owned_room(request, slug)
    form = CoHostForm(request.POST)
    if form.is_valid():
        try:
            services.co_host_add(room=room, user=form.cleaned_data["user"])
            messages.success(
                request, _("%(name)s is now a co-host.") % {"name": form.cleaned_data["user"]}
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
    else:
        messages.error(request, " ".join(form.errors["user"]))
    return redirect(room)


@login_required
@require_POST
def co_host_remove(request, slug, user_id):
    room = owned_room(request, slug)
    user = get_object_or_404(room.co_hosts, pk=user_id)
    services.co_host_remove(room=room, user=user)
    messages.success(request, _("%(name)s is no longer a co-host.") % {"name": user})
    return redirect(room)


@login_required
def meeting_create(request, slug):
    room = hosted_room(request, slug)
    form = MeetingForm(request.POST or None, initial={"time_zone": request.user.time_zone})
    if request.method == "POST" and form.is_valid():
        try:
            meeting = services.meeting_schedule(
                room=room, created_by=request.user, **form.meeting_fields()
            )
        except ValidationError as error:
            form_error(form, error)
        else:
            messages.success(request, _("The meeting is scheduled."))
            return redirect(meeting)
    return render(request, "rooms/meeting_form.html", {"form": form, "room": room})


def visible_meeting(request, slug, pk) -> Meeting:
    meeting = get_object_or_404(Meeting.objects.select_related("room"), pk=pk, room__slug=slug)
    if not selectors.visible_meetings(request.user).filter(pk=meeting.pk).exists():
        raise Http404
    return meeting


@login_required
def meeting_detail(request, slug, pk):
    meeting = visible_meeting(request, slug, pk)
    now = timezone.now()
    upcoming = occurrences(meeting, after=now, before=now + dt.timedelta(days=120))
    return render(
        request,
        "rooms/meeting_detail.html",
        {
            "meeting": meeting,
            "room": meeting.room,
            "is_host": meeting.room.is_host(request.user),
            "rows": [occurrence_row(occurrence, now) for occurrence in upcoming[:30]],
            "cancelled": meeting.cancellations.all(),
        },
    )


@login_required
def meeting_edit(request, slug, pk):
    room = hosted_room(request, slug)
    meeting = get_object_or_404(room.meetings, pk=pk, cancelled_at__isnull=True)
    form = MeetingForm(request.POST or None, initial=MeetingForm.initial_for(meeting))
    if request.method == "POST" and form.is_valid():
        changed = {
            key: value
            for key, value in form.meeting_fields().items()
            if getattr(meeting, key) != value
        }
        try:
            if changed:
                services.meeting_update(meeting=meeting, **changed)
        except ValidationError as error:
            form_error(form, error)
        else:
            messages.success(request, _("The meeting was updated; invitees were sent the change."))
            return redirect(meeting)
    return render(
        request, "rooms/meeting_form.html", {"form": form, "room": room, "meeting": meeting}
    )


@login_required
@require_POST
def meeting_cancel(request, slug, pk):
    room = hosted_room(request, slug)
    meeting = get_object_or_404(room.meetings, pk=pk)
    services.meeting_cancel(meeting=meeting)
    messages.success(request, _("The meeting was cancelled; invitees were told."))
    return redirect(room)


@login_required
@require_POST
def occurrence_cancel(request, slug, pk):
    room = hosted_room(request, slug)
    meeting = get_object_or_404(room.meetings, pk=pk)
    form = OccurrenceCancelForm(request.POST)
    if form.is_valid():
        try:
            services.occurrence_cancel(meeting=meeting, starts_at=form.cleaned_data["starts_at"])
            messages.success(request, _("That occurrence was cancelled; invitees were told."))
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
    else:
        messages.error(request, _("That occurrence could not be found."))
    return redirect(meeting)


@login_required
def meeting_ics(request, slug, pk):
    meeting = visible_meeting(request, slug, pk)
    response = HttpResponse(
        calendar.meeting_ics(meeting, request=request), content_type="text/calendar; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{calendar.ics_filename(meeting)}"'
    return response


def feed(request, user_id, token):
    user = calendar.feed_user(user_id, token)
    if user is None:
        raise Http404
    return HttpResponse(
        calendar.feed_ics(user, request=request), content_type="text/calendar; charset=utf-8"
    )


@login_required
@require_POST
def feed_regenerate(request):
    calendar.feed_regenerate(request.user)
    messages.success(
        request, _("Your calendar feed has a new address; the old one no longer works.")
    )
    return redirect("rooms:calendar")


@login_required
def invitations(request, slug):
    room = hosted_room(request, slug)
    email_form = EmailInvitationForm(room=room, prefix="email")
    link_form = LinkInvitationForm(room=room, prefix="link")
    new_link = None
    if request.method == "POST" and "email-emails" in request.POST:
        email_form = EmailInvitationForm(request.POST, room=room, prefix="email")
        if email_form.is_valid():
            for address, user in email_form.recipients():
                services.invitation_create(
                    room=room,
                    created_by=request.user,
                    meeting=email_form.cleaned_data["meeting"],
                    email=address,
                    user=user,
                    role=email_form.cleaned_data["role"],
                )
            messages.success(request, _("The invitations were sent."))
            return redirect("rooms:invitations", slug=room.slug)
    elif request.method == "POST":
        link_form = LinkInvitationForm(request.POST, room=room, prefix="link")
        if link_form.is_valid():
            try:
                _invitation, token = services.invitation_create(
                    room=room, created_by=request.user, **link_form.cleaned_data
                )
            except ValidationError as error:
                form_error(link_form, error)
            else:
                new_link = request.build_absolute_uri(
                    reverse("rooms:invitation", kwargs={"token": token})
                )
                link_form = LinkInvitationForm(room=room, prefix="link")
    return render(
        request,
        "rooms/invitations.html",
        {
            "room": room,
            "email_form": email_form,
            "link_form": link_form,
            "new_link": new_link,
            "invitations": room.invitations.select_related("user", "meeting"),
        },
    )


@login_required
@require_POST
def invitation_revoke(request, slug, pk):
    room = hosted_room(request, slug)
    invitation = get_object_or_404(room.invitations, pk=pk)
    services.invitation_revoke(invitation=invitation)
    messages.success(request, _("The invitation was withdrawn."))
    return redirect("rooms:invitations", slug=room.slug)


def rate_limit_wait(request, *, group: str, rate: str, count: bool = True) -> int:
    """
    Check a limit per client address, counting this request against it when `count`.

    Return 0 within the limit, else the seconds until the limit's window ends (for Retry-After).
    """
    usage = get_usage(request, group=group, key="ip", rate=rate, increment=count)
    if usage is None or not usage["should_limit"]:
        return 0
    return max(usage["time_left"], 1)


def invitation(request, token):
    """
    The page an invitation link opens.

    The person it is addressed to answers it (RSVP) and joins; anyone else signed in is refused
    a personal invitation (403). A signed-in user with an open link becomes an invitee; anyone
    else gives a name and joins as a guest, if the link allows guests, and a browser that is a
    guest by this link already stays that guest under the new name.

    Tries at redeeming (answers to this page, visits of links that do not exist) are limited per
    client address, and so are new guests. Past the first limit the page answers 429 without a
    word about the invitation, so that it tells someone guessing links nothing; the form comes
    back as it was sent.
    """
    found = services.invitation_for_token(token)
    user = request.user
    if found is not None and found.addresses(user):
        if request.method == "POST" and "rsvp" in request.POST:
            try:
                services.invitation_rsvp(invitation=found, answer=request.POST["rsvp"])
                messages.success(request, _("Thank you for answering."))
            except ValidationError as error:
                messages.error(request, " ".join(error.messages))
            return redirect("rooms:invitation", token=token)
        return render(
            request,
            "rooms/invitation.html",
            {"invitation": found, "room": found.room, "addressed": True},
        )
    form = GuestForm(request.POST or None)
    wait = rate_limit_wait(
        request,
        group="rooms.invitation",
        rate=settings.INVITATION_RATE,
        count=request.method == "POST" or found is None,
    )
    if wait:
        response = render(request, "rooms/invitation_limited.html", {"form": form}, status=429)
        response["Retry-After"] = str(wait)
        return response
    if found is None:
        return render(request, "rooms/invitation_invalid.html", status=404)
    refusal = services.invitation_refusal(found, user)
    guest = None if user.is_authenticated else visiting_guest(request, found.room)
    context = {
        "invitation": found,
        "room": found.room,
        "form": form,
        "addressed": False,
        "refusal": " ".join(refusal.messages) if refusal else "",
        # A used-up link still lets in whoever came by it before, and nobody new.
        "used_up": found.is_used_up and not came_by_link(found, user=user, guest=guest),
    }
    if refusal is not None and refusal.code == services.NOT_YOURS:
        return render(request, "rooms/invitation.html", {**context, "not_yours": True}, status=403)
    if request.method == "POST" and (user.is_authenticated or form.is_valid()):
        new_guest = guest is None or guest.invitation_id != found.pk
        if not user.is_authenticated and refusal is None and new_guest:
            wait = rate_limit_wait(
                request, group="rooms.guest", rate=settings.INVITATION_GUEST_RATE
            )
            if wait:
                form.add_error(
                    None,
                    _(
                        "Too many guests joined from your network just now. Wait a while and "
                        "try again, or sign in."
                    ),
                )
                response = render(request, "rooms/invitation.html", context, status=429)
                response["Retry-After"] = str(wait)
                return response
        try:
            _invitation, guest = services.invitation_redeem(
                token=token,
                user=user,
                guest_name=form.cleaned_data["name"] if not user.is_authenticated else "",
                guest=guest,
            )
        except ValidationError as error:
            form_error(form, error)
        else:
            if guest is not None:
                remember_guest(request, guest)
            return redirect(found.room.get_call_url())
    return render(request, "rooms/invitation.html", context)


def came_by_link(invitation: Invitation, *, user, guest: Guest | None) -> bool:
    """Return whether this person used this link before: a used-up link still takes them."""
    if user.is_authenticated:
        return invitation.redemptions.filter(user=user).exists()
    return guest is not None and guest.invitation_id == invitation.pk


def remember_guest(request, guest: Guest) -> None:
    """Make this browser that guest in the guest's room (one guest per room and browser)."""
    guests = request.session.get(selectors.GUEST_SESSION_KEY, {})
    guests[str(guest.invitation.room_id)] = str(guest.pk)
    request.session[selectors.GUEST_SESSION_KEY] = guests


def visiting_guest(request, room: Room) -> Guest | None:
    """Return the guest this browser is in the room, unless someone is signed in."""
    if request.user.is_authenticated:
        return None
    return selectors.guest_for_session(request.session, room)


def call(request, slug):
    """The call page: join only when the access rule allows, else say why and what next."""
    room = get_object_or_404(Room.objects.select_related("owner"), slug=slug)
    guest = visiting_guest(request, room)
    # The browser gets an id a ban can name, before it ever connects to a call.
    browser = selectors.browser_of(request.session, create=True)
    decision = selectors.join_decision(room, user=request.user, guest=guest, browser=browser)
    if decision.code == selectors.NOT_SIGNED_IN:
        return redirect(f"{reverse('account_login')}?next={room.get_call_url()}")
    # Before the meeting opens, the page is the pre-join screen as it will be at the opening,
    # hidden behind a countdown until then (static/js/opening.js). Joining early stays
    # impossible: the consumer asks the access rule again when the page connects.
    too_early = decision if decision.code == selectors.TOO_EARLY else None
    if too_early:
        at_opening = selectors.join_decision(
            room, user=request.user, guest=guest, browser=browser, at=too_early.opens_at
        )
        if at_opening.allowed:
            decision = at_opening
    # The countdown runs from the server's clock: a browser's clock may be wrong.
    seconds_to_opening = too_early and (too_early.opens_at - timezone.now()).total_seconds()
    guest_form = None
    if guest is not None and decision.allowed:
        # A guest may change the name others will see, up to the moment of joining.
        guest_form = GuestForm(request.POST or None, initial={"name": guest.name})
        if request.method == "POST" and guest_form.is_valid():
            services.guest_rename(guest=guest, name=guest_form.cleaned_data["name"])
            return redirect(room.get_call_url())
    status = 200 if decision.allowed or decision.code == selectors.TOO_EARLY else 403
    call_config = {
        "slug": room.slug,
        "roomName": room.name,
        "websocketPath": f"/ws/rooms/{room.slug}/",
        "peopleUrl": reverse("rooms:call_people", kwargs={"slug": room.slug}),
        # In a call on the media server, files are uploaded here (with the CSRF token) and
        # announced to the call.
        "filesUrl": reverse("rooms:call_file_upload", kwargs={"slug": room.slug}),
        "fileMaxBytes": settings.CALL_FILE_MAX_BYTES,
        "csrfToken": get_token(request),
        "name": decision.name,
        "maxParticipants": room.max_participants,
        # Someone waiting in the lobby may not see who is in the call (call_people): no asking.
        "mayListPeople": decision.allowed and not decision.lobby,
        # The server's closing error says why a call ended; these are for when nobody said.
        "endings": {
            "closed": _("The connection to the call was closed."),
            "left": _("You left the call."),
        },
    }
    return render(
        request,
        "rooms/call.html",
        {
            "room": room,
            "decision": decision,
            "guest": guest,
            "guest_form": guest_form,
            "call_config": call_config,
            "too_early": too_early,
            "seconds_to_opening": seconds_to_opening,
        },
        status=status,
    )


def call_people(request, slug):
    """Who is in the call now, for the pre-join screen of someone who may join it."""
    room = get_object_or_404(Room, slug=slug)
    guest = visiting_guest(request, room)
    browser = selectors.browser_of(request.session)
    decision = selectors.join_decision(room, user=request.user, guest=guest, browser=browser)
    if not decision.allowed or decision.lobby:
        return JsonResponse({"people": []}, status=403)
    return JsonResponse({"people": live.participant_names(room.slug)})


# --- Files shared in calls through the media server (docs/signaling.md, "Files in sfu mode") ----


def call_person(request, room: Room) -> tuple[selectors.JoinDecision, Guest | None]:
    """
    Return who this request's person is to the room now, and the guest they are in it, if any.

    The rule a live call asks again when access changes: a ban, a revoked invitation or a removed
    co-host keeps them out of the call's files; a lock or the end of the meeting's time does not.
    """
    guest = visiting_guest(request, room)
    browser = selectors.browser_of(request.session)
    return selectors.standing(room, user=request.user, guest=guest, browser=browser), guest


def in_the_call(room: Room, peer_id: str, *, user, guest: Guest | None) -> bool:
    """Return whether this peer is in the room's call now, as this very person."""
    entry = live.peer_in_call(room.slug, peer_id) if peer_id else None
    if entry is None:
        return False
    if user.is_authenticated:
        return entry["user_id"] == user.pk
    return guest is not None and entry["guest_id"] == str(guest.pk)


def json_error(status: int, code: str, message) -> JsonResponse:
    return JsonResponse({"error": code, "message": str(message)}, status=status)


class CallFileUploadHandler(TemporaryFileUploadHandler):
    """
    Take the one file of a call upload (the field `file`) to a temporary file on disk, taking its
    SHA-256 on the way, and stop the upload as soon as it is larger than `max_bytes`.
    """

    field_name = "file"

    def __init__(self, request, *, max_bytes: int):
        super().__init__(request)
        self.max_bytes = max_bytes
        self.too_large = False
        self.taken = False

    def new_file(self, field_name, *args, **kwargs):
        if field_name != self.field_name or self.taken:
            raise SkipFile
        self.taken = True
        self.received = 0
        self.digest = hashlib.sha256()
        super().new_file(field_name, *args, **kwargs)

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.max_bytes:
            self.too_large = True
            # The temporary file is closed, and so removed; the rest of the body goes unread.
            raise StopUpload(connection_reset=True)
        self.digest.update(raw_data)
        return super().receive_data_chunk(raw_data, start)

    def file_complete(self, file_size):
        upload = super().file_complete(file_size)
        upload.sha256 = self.digest.hexdigest()
        return upload


# The upload handlers must be in place before anything reads the body, the CSRF check included:
# Django's documented way is to exempt the view and check CSRF on the function that reads it.
@csrf_exempt
@require_POST
def call_file_upload(request, slug):
    """Share a file with the call: 201 and what the call is told of it, or a JSON error."""
    room = get_object_or_404(Room, slug=slug)
    decision, guest = call_person(request, room)
    if not decision.allowed:
        return json_error(403, decision.code, decision.message)
    handler = CallFileUploadHandler(request, max_bytes=settings.CALL_FILE_MAX_BYTES)
    request.upload_handlers = [handler]
    return call_file_receive(request, room=room, decision=decision, guest=guest, handler=handler)


@csrf_protect
def call_file_receive(request, *, room, decision, guest, handler) -> JsonResponse:
    upload = request.FILES.get(CallFileUploadHandler.field_name)  # reads the body
    if handler.too_large:
        error = services.call_file_too_large()
        return json_error(413, signaling.TOO_LARGE, " ".join(error.messages))
    if upload is None:
        return json_error(
            400, signaling.MISSING_FIELD, _("Send the file in the form field “file”.")
        )
    if not in_the_call(room, request.POST.get("peer", ""), user=request.user, guest=guest):
        return json_error(
            403, signaling.NOT_ALLOWED, _("Only people in the call can share files in it.")
        )
    try:
        call_file = services.call_file_add(
            room=room,
            upload=upload,
            peer=request.POST.get("peer", ""),
            author_name=decision.name,
            user=request.user,
            guest=guest,
            sha256=upload.sha256,
        )
    except ValidationError as error:
        if getattr(error, "code", None) == "too-large":
            return json_error(413, signaling.TOO_LARGE, " ".join(error.messages))
        return json_error(400, signaling.BAD_VALUE, " ".join(error.messages))
    return JsonResponse(call_file.describe(), status=201)


@require_GET
def call_file(request, slug, file_id):
    """A file shared in the call, as a download, for the people whose access to the room stands."""
    room = get_object_or_404(Room, slug=slug)
    decision, _guest = call_person(request, room)
    if not decision.allowed:
        return json_error(403, decision.code, decision.message)
    shared = get_object_or_404(CallFile, pk=file_id, room=room)
    try:
        content = shared.data.open("rb")
    except FileNotFoundError:
        raise Http404 from None
    # Whatever the sender claimed, the browser gets bytes to save, never a page to render.
    response = FileResponse(
        content, as_attachment=True, filename=shared.name, content_type="application/octet-stream"
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    response["Cache-Control"] = "private, no-cache"
    return response
