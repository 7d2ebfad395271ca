"""The ids of the page regions that htmx swaps, and the client events it listens for.

Views, templates (as `{{ dom.header }}`, from the `dashboard` context processor) and tests name a
region through these constants, never through a string of their own. Each live region has its own
URL (urls.py), so that a push can later tell the page "fetch this region again".
"""

from __future__ import annotations

CONTENT = "content-main"  # the page's main region: a page still loading fetches it again
LIVE_CONTROLS = "live-controls"  # "Live: every 5 s" and the pause button (dashboard/base.html)

# The conversation list
RESULTS = "results"

# A conversation's page
HEADER = "conversation-header"  # its metadata: /conversations/<id>/header/
OVER_FLAG = "conversation-over-flag"  # present once the header saw the conversation end
TABS = "tabs"  # the tab strip and the selected tab: the tab URLs answer htmx with it
TAB_PANEL = "tab-panel"
MEMBERS_PANEL = "members-panel"  # /conversations/<id>/members/panel/
EVENTS_PANEL = "events-panel"
EVENT_ROWS = "event-rows"  # the events table body that polls add rows to
EVENTS_POLLER = "events-poller"  # /conversations/<id>/events/poll/
EVENTS_BANNER = "events-banner"
EVENTS_RETRY = "events-retry"  # an events tab with nothing to show asks for itself again
EVENT_TYPE_OPTIONS = "event-type-options"
HISTORY_BANNER = "history-banner"  # "From the stored history": the API no longer has it
STORE_NOTE = "store-note"  # "From the event store": the page reads stored events

# A user's page
USER_MEMBERSHIPS = "user-memberships"  # the conversations the event store saw the user in

# The live board (/live/)
LIVE_BOARD = "live-board"  # its rows: /live/ answers htmx with this region

# Client events (htmx `HX-Trigger-After-Swap`), listened for with `<name> from:body`.
CONVERSATION_OVER = "conversation-over"  # the header saw the conversation end: last looks


def for_templates() -> dict[str, str]:
    """Every id and event name above, lower-cased: `{{ dom.events_poller }}`."""
    return {
        name.lower(): value
        for name, value in globals().items()
        if name.isupper() and isinstance(value, str)
    }
