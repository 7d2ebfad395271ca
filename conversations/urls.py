"""The dashboard's URLs: the pages, and each live panel of a conversation's page at its own URL
(so a push can later say "fetch this panel again"). Ids are checked by path converters (ids.py)."""

from django.urls import path, register_converter

from . import ids, views
from .views.audit import audit_log

register_converter(ids.ConversationIdConverter, "con")
register_converter(ids.MemberIdConverter, "mem")
register_converter(ids.UserIdConverter, "usr")

app_name = "conversations"

urlpatterns = [
    path("live/", views.live_board, name="live"),
    path("conversations/", views.conversation_list, name="list"),
    path("conversations/<con:conversation_id>/", views.conversation_detail, name="detail"),
    path("conversations/<con:conversation_id>/members/", views.members_tab, name="members"),
    path("conversations/<con:conversation_id>/events/", views.events_tab, name="events"),
    path(
        "conversations/<con:conversation_id>/members/<mem:member_id>/",
        views.member_detail,
        name="member",
    ),
    # The live panels of a conversation's page.
    path("conversations/<con:conversation_id>/header/", views.header_panel, name="header"),
    path(
        "conversations/<con:conversation_id>/members/panel/",
        views.members_panel,
        name="members_panel",
    ),
    path("conversations/<con:conversation_id>/events/poll/", views.events_poll, name="events_poll"),
    path("conversations/<con:conversation_id>/timeline/", views.timeline_panel, name="timeline"),
    path("users/", views.user_list, name="users"),
    path("users/<usr:user_id>/", views.user_detail, name="user"),
    path("search/", views.search_page, name="search"),
    # The jump box's old address: a pasted id still goes to its page.
    path("jump/", views.jump, name="jump"),
    # Server-sent events: what changed, for the open pages (views/stream.py).
    path("stream/", views.stream, name="stream"),
    # The audit log (superusers and holders of conversations.view_auditentry).
    path("audit/", audit_log, name="audit"),
]
