"""gunicorn settings for the Procfile's `web:` process, `make serve` and the benchmark.

gunicorn manages the processes (restarts, graceful reloads, signals); each runs uvicorn's ASGI
worker, whose event loop holds the live streams (/stream/) without a thread each. Pages are
synchronous Django views, run in threads (at most SYNC_REQUESTS_PER_PROCESS at once per process,
dashboard_project/bounded.py). README "Web server" says why this server and what it measured.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Without Redis, live notices stay in the process that stored the event (conversations/push):
# one process then, unless told otherwise.
_redis = os.environ.get("PUSH_URL") or os.environ.get("CACHE_URL") or os.environ.get("REDIS_URL")
_redis = bool(_redis and _redis.startswith(("redis://", "rediss://", "unix://")))
workers = int(os.environ.get("GUNICORN_WORKERS", "2" if _redis else "1"))
worker_class = "uvicorn_worker.UvicornWorker"
timeout = 30  # for the uvicorn worker: how long a worker may miss its heartbeat before a restart
graceful_timeout = 10  # open streams end then; their pages reconnect to another worker
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
# The client's connection pool and token are per process: fork first, then build them.
preload_app = False
wsgi_app = "dashboard_project.asgi:application"
