from django.urls import path

from rooms import views

app_name = "rooms"

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("calendar/", views.calendar_view, name="calendar"),
    path("calendar/regenerate/", views.feed_regenerate, name="feed_regenerate"),
    path("calendar/<int:user_id>/<str:token>.ics", views.feed, name="feed"),
    path("rooms/", views.RoomListView.as_view(), name="list"),
    path("rooms/new/", views.RoomCreateView.as_view(), name="create"),
    path("rooms/<slug:slug>/", views.room_detail, name="detail"),
    path("rooms/<slug:slug>/edit/", views.RoomUpdateView.as_view(), name="edit"),
    path("rooms/<slug:slug>/delete/", views.RoomDeleteView.as_view(), name="delete"),
    path("rooms/<slug:slug>/call/", views.call, name="call"),
    path("rooms/<slug:slug>/call/people/", views.call_people, name="call_people"),
    path("rooms/<slug:slug>/files/", views.call_file_upload, name="call_file_upload"),
    path("rooms/<slug:slug>/files/<uuid:file_id>/", views.call_file, name="call_file"),
    path("rooms/<slug:slug>/co-hosts/", views.co_host_add, name="co_host_add"),
    path(
        "rooms/<slug:slug>/co-hosts/<int:user_id>/remove/",
        views.co_host_remove,
        name="co_host_remove",
    ),
    path("rooms/<slug:slug>/meetings/new/", views.meeting_create, name="meeting_create"),
    path("rooms/<slug:slug>/meetings/<int:pk>/", views.meeting_detail, name="meeting"),
    path("rooms/<slug:slug>/meetings/<int:pk>/edit/", views.meeting_edit, name="meeting_edit"),
    path(
        "rooms/<slug:slug>/meetings/<int:pk>/cancel/", views.meeting_cancel, name="meeting_cancel"
    ),
    path(
        "rooms/<slug:slug>/meetings/<int:pk>/occurrences/cancel/",
        views.occurrence_cancel,
        name="occurrence_cancel",
    ),
    path("rooms/<slug:slug>/meetings/<int:pk>/meeting.ics", views.meeting_ics, name="meeting_ics"),
    path("rooms/<slug:slug>/invitations/", views.invitations, name="invitations"),
    path(
        "rooms/<slug:slug>/invitations/<int:pk>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
    path("i/<str:token>/", views.invitation, name="invitation"),
]
