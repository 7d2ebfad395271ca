"""The home URL, and the jump box: go to whatever id staff pasted."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

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
    text = form.cleaned_data["id"]
    target = page_of(text, form.cleaned_data.get("conversation") or "")
    if target:
        return redirect(target)
    if "member" in _ids_in(text):
        return refused(
            request,
            "Jump to an id",
            "A member id is only unique within its conversation: paste the conversation id with "
            "it (for example the member's page URL), or use the box on the conversation's page.",
        )
    return refused(
        request,
        "Jump to an id",
        "That is not a conversation (CON-…), member (MEM-…) or user (USR-…) id.",
    )


def _ids_in(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for match in forms.ID_IN_TEXT.finditer(text):
        value = ids.canonical(match.group(0))
        kind = ids.kind_of(value)  # well formed, so a reverse() of it cannot fail
        if kind:
            found.setdefault(kind, value)
    return found


def page_of(text: str, conversation_context: str = "") -> str | None:
    """The page of the id in pasted text: a member's (with its conversation, from the text or
    from the page the box is on), a user's, a conversation's; None when it names none."""
    found = _ids_in(text)
    conversation_id = found.get("conversation")
    member_context = conversation_id or conversation_context
    if "member" in found and member_context:
        return reverse("conversations:member", args=[member_context, found["member"]])
    if "member" in found:
        return None
    if "user" in found:
        return reverse("conversations:user", args=[found["user"]])
    if conversation_id:
        return reverse("conversations:detail", args=[conversation_id])
    return None
