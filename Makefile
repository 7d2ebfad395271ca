# The two commands a newcomer needs: `make run` (the dashboard on the sandbox) and `make test`.
# Everything they need is installed here: the virtual environment, the packages, Chromium, axe-core.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

# The first Python >= 3.12 on the machine (Django 6.1 needs it). Inside this repository pyenv's
# `python3` follows .python-version.
PYTHON_FOR_VENV := $(shell for p in python3 python3.13 python3.12; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
	&& { echo $$p; break; }; done)

.PHONY: run test lint format serve bench screenshots browser-deps check-deploy test-production clean help

help:
	@echo "make run    - the dashboard on http://127.0.0.1:$(PORT)/ (on the sandbox unless Vonage is configured)"
	@echo "make test   - install what the tests need, lint, and run the whole suite"
	@echo "make serve  - the Procfile's processes, production-like: gunicorn and the worker (needs SECRET_KEY and Vonage settings)"
	@echo "make bench  - the benchmark (gunicorn + sandbox with injected latency; webhook ingestion on PostgreSQL)"

$(VENV)/.runtime: requirements.txt
	@test -n "$(PYTHON_FOR_VENV)" || { echo "Python >= 3.12 is required (Django 6.1). Install it, e.g. with pyenv." >&2; exit 1; }
	@test -x $(PY) || $(PYTHON_FOR_VENV) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

node_modules/axe-core/axe.min.js: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	@touch $@

run: $(VENV)/.runtime
	@PORT=$(PORT) $(PY) scripts/run.py

# Chromium comes from Debian (Playwright cannot download its own browser here).
browser-deps:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Chromium from Debian for the browser tests..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "Chromium is missing: install it (e.g. 'sudo apt-get install chromium') for the browser tests." >&2; \
		if [ "$$CI" = "true" ]; then exit 1; fi; \
	fi

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: $(VENV)/.dev browser-deps node_modules/axe-core/axe.min.js lint
	$(PY) -m pytest $(PYTEST_ARGS)

# The same suite on the production path: the local PostgreSQL and Redis.
test-production: $(VENV)/.dev browser-deps node_modules/axe-core/axe.min.js
	DATABASE_URL=$${PROD_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} \
	CACHE_URL=$${PROD_CACHE_URL:-redis://127.0.0.1:6379/1} \
	$(PY) -m pytest -m "not browser" $(PYTEST_ARGS)

check-deploy: $(VENV)/.runtime
	DEBUG=false DASHBOARD_SANDBOX=true SECRET_KEY=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))') \
	SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https \
	$(PY) manage.py check --deploy --fail-level WARNING

serve: $(VENV)/.runtime
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py createcachetable
	@# The Procfile's processes (web: gunicorn on $$PORT, worker: the job engine), as a host runs them;
	@# -e /dev/null: settings.py reads .env itself, where the process environment wins.
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/honcho start -f Procfile -p $(PORT) -e /dev/null

# Refresh the README's screenshots from the browser tests.
screenshots: $(VENV)/.dev browser-deps node_modules/axe-core/axe.min.js
	SCREENSHOT_DIR=docs/screenshots $(PY) -m pytest tests/browser -q

bench: $(VENV)/.dev
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) staticfiles test-results .pytest_cache .ruff_cache node_modules
