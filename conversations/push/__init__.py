"""Live push: what changed in the store, told to the open pages.

    store ──notices──> fan-out (Redis pub/sub | in-process) ──> hub (per process) ──> streams (SSE)

A notice is small ("conversation X has new events", "the live set changed"); it never carries
customer data. A page that hears one fetches the partial it needs through the same views,
permissions and escaping as a page load. Pub/sub delivers at most once, so a page re-fetches what
it shows whenever its stream (re)opens.

- notices.py: what a notice is, its topics, and what the store announces after a commit;
- hub.py: this process's open streams and the notices they wait for;
- fanout.py: publishing notices, across processes and hosts through Redis when configured;
- limits.py: how many streams one user, and one process, may hold;
- stream.py: the stream itself, /stream/, served by the ASGI application (dashboard_project/
  asgi.py); conversations/views/stream.py is its stand-in under a WSGI server (a 503).
"""
