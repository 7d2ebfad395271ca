"""The dashboard's pages and live panels, one module per part of the site.

- `base`: the one decorator stack every view wears, and the helpers they share;
- `listing`: the conversation list and the user list;
- `conversation`: a conversation's page (its tabs), its header and its members panel;
- `events`: the Events tab and its poll;
- `people`: a member's page and a user's page;
- `live`: the live board, from the event store;
- `timeline`: a conversation's timeline (a panel of its page, and a page of its own);
- `jump`: the home URL, and a pasted id's page (for the search box too);
- `search`: search over the stored history.
"""

from .conversation import conversation_detail, events_tab, header_panel, members_panel, members_tab
from .events import EVENT_TYPE_CHOICES, events_poll
from .jump import home, jump
from .listing import conversation_list, user_list
from .live import live_board
from .people import member_detail, user_detail
from .search import search_page
from .stream import stream
from .timeline import timeline_panel

__all__ = [
    "EVENT_TYPE_CHOICES",
    "conversation_detail",
    "conversation_list",
    "events_poll",
    "events_tab",
    "header_panel",
    "home",
    "jump",
    "live_board",
    "member_detail",
    "members_panel",
    "members_tab",
    "search_page",
    "stream",
    "timeline_panel",
    "user_detail",
    "user_list",
]
