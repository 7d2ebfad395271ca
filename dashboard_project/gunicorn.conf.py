"""gunicorn settings for `make serve` and the benchmark: a few workers, each with threads.

Threads suit the dashboard: a request spends its time waiting on upstream HTTP, not on the CPU.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
worker_class = "gthread"
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
# The client's connection pool and token are per process: fork first, then build them.
preload_app = False
wsgi_app = "dashboard_project.wsgi"
