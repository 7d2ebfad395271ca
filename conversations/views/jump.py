"""The home URL, and the jump box: go to whatever id staff pasted."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import redirect

from conversations import forms, ids

from .base import HtmxHttpRequest, dashboard_view, invalid, refused


@dashboard_view
def home(request: HtmxHttpRequest) -> HttpResponse:
    """The dashboard opens on what is happening now."""
    return redirect("conversations:live")


@dashboard_view
def jump(request: HtmxHttpRequest) -> HttpResponse:
    """Go to whatever CON-, USR- or MEM- id staff pasted (a URL holding them works too), its
    prefix in any case: `con-…` is the API's `CON-…`."""
    form = forms.JumpForm(request.GET)
    if not form.is_valid():
        return invalid(request, form, "Jump to an id")
    found: dict[str, str] = {}
    for match in forms.ID_IN_TEXT.finditer(form.cleaned_data["id"]):
        value = ids.canonical(match.group(0))
        kind = ids.kind_of(value)  # well formed, so the redirect's reverse() cannot fail
        if kind:
            found.setdefault(kind, value)
    conversation_id = found.get("conversation")
    # The page the box is on names the conversation a pasted member id belongs to.
    member_context = conversation_id or form.cleaned_data.get("conversation")
    if "member" in found and member_context:
        return redirect("conversations:member", member_context, found["member"])
    if "member" in found:
        return refused(
            request,
            "Jump to an id",
            "A member id is only unique within its conversation: paste the conversation id with "
            "it (for example the member's page URL), or use the box on the conversation's page.",
        )
    if "user" in found:
        return redirect("conversations:user", found["user"])
    if conversation_id:
        return redirect("conversations:detail", conversation_id)
    return refused(
        request,
        "Jump to an id",
        "That is not a conversation (CON-…), member (MEM-…) or user (USR-…) id.",
    )
