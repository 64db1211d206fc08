# The clinic: `make run` to try it, `make test` to check it. `make help` lists all.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
SERVICES := $(PY) -m clinic.embedded

# Debian packages: WeasyPrint's libraries and fonts; Chromium, pdftoppm and
# age (the backups open with the standard tool) for the tests. The PDFs print
# patients' names in every script they write them in:
# fonts-noto-core (Latin, Greek, Cyrillic, Arabic, Hebrew, Devanagari...) and
# fonts-noto-cjk (Chinese, Japanese, Korean) beside DejaVu; the Dockerfile
# installs the same. Tools that may come from elsewhere (Node from its own
# installer, a compiler for the embedded Redis) are asked for only when the
# command is missing.
tool_pkgs = $(if $(shell command -v $(1) 2>/dev/null),,$(2))
RUN_DEB := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
	fonts-dejavu-core fonts-noto-core fonts-noto-cjk \
	$(call tool_pkgs,npm,nodejs npm) $(call tool_pkgs,gcc,gcc) $(call tool_pkgs,make,make) \
	$(if $(shell $(PYTHON) -c 'import ensurepip' 2>/dev/null && echo ok),,python3-venv)
TEST_DEB := $(RUN_DEB) chromium poppler-utils faketime age

.PHONY: help install run test test-clock-ahead guide-screens lint format check-migrations bench bench-search bench-calendar bench-audit bench-followups bench-reminders loadtest manage shell clean serve system-deps-run system-deps-test

help: ## List the commands
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-18s %s\n", $$1, $$2}'

# Install missing Debian packages when we can (root or passwordless sudo);
# otherwise stop with one line naming them.
define ensure_deb
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "Missing Debian packages; install them with: sudo apt-get install$$missing"; exit 1; fi; \
	  echo "Installing Debian packages:$$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

system-deps-run:
	$(call ensure_deb,$(RUN_DEB))

system-deps-test:
	$(call ensure_deb,$(TEST_DEB))

$(VENV)/.installed-run: requirements.txt constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $(VENV)/.installed-run $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: system-deps-run $(VENV)/.installed-run node_modules/.installed ## Install what the clinic needs to run

run: install ## Run the clinic with demo data at http://127.0.0.1:$(PORT)/ (web, worker, beat)
	@# Demo conveniences: plain http, no two-factor, and static files hashed
	@# but not pre-compressed (compressing Bootstrap takes half a minute).
	@# Links in emails point at the port served, unless SITE_URL is set.
	@DEBUG=False HTTPS=False REQUIRE_STAFF_2FA=False \
	  ALLOWED_HOSTS=127.0.0.1,localhost PORT=$(PORT) SITE_URL="$${SITE_URL:-http://127.0.0.1:$(PORT)}" \
	  STATICFILES_BACKEND=django.contrib.staticfiles.storage.ManifestStaticFilesStorage \
	  $(SERVICES) --name run -- $(MAKE) --no-print-directory serve

# Runs inside the services runner: DATABASE_URL and REDIS_URL are set.
serve:
	@$(PY) manage.py migrate --no-input -v 0
	@$(PY) manage.py collectstatic --no-input -v 0
	@$(PY) manage.py seed_demo --force
	@echo ""
	@echo "  The clinic is starting at http://127.0.0.1:$(PORT)/  (Ctrl-C stops everything)"
	@echo "  Health: http://127.0.0.1:$(PORT)/healthz"
	@echo ""
	@# Ctrl-C (exit 130) is the normal way to stop: not an error.
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/honcho start -f Procfile --port $(PORT); \
	  status=$$?; [ $$status -eq 130 ] || [ $$status -eq 0 ] || exit $$status

# The suite runs in TEST_WORKERS processes (pytest-xdist), each on its own
# test database and Redis database (tests/settings.py); each starts with half
# the tests, and one that runs out takes over part of the other's (worksteal).
# TEST_WORKERS=0 runs the suite in pytest's own process.
TEST_WORKERS ?= 2
test: system-deps-test $(VENV)/.installed-dev node_modules/.installed ## Run the whole test suite on real PostgreSQL and Redis
	$(SERVICES) --name test -- $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# libfaketime moves the clock of the runner, its own PostgreSQL and Redis and
# pytest alike (tests/clock_ahead.py); CLOCK='--at "2027-03-28 00:30"' picks
# a moment in the clinic's zone instead of a year on.
CLOCK ?= --ahead 365
test-clock-ahead: system-deps-test $(VENV)/.installed-dev node_modules/.installed ## The suite with the clock a year ahead (CLOCK='--at "YYYY-MM-DD HH:MM"' for another moment)
	env -u REDIS_URL $(PY) -m tests.clock_ahead $(CLOCK) -- $(PY) -m pytest $(PYTEST_ARGS)

# The user guide's pictures (docs/images/), re-taken when screens change: the
# demo seeded on a fixed Tuesday, each screen opened in Chromium as its role,
# the PNGs cut to 256 colours (tests/browser/test_guide_screenshots.py; the
# suite skips it without GUIDE_SCREENSHOTS=1). Look at them before committing.
guide-screens: system-deps-test $(VENV)/.installed-dev node_modules/.installed ## Re-take the user guide's screenshots from the demo data (docs/images/)
	GUIDE_SCREENSHOTS=1 $(SERVICES) --name test -- $(PY) -m pytest -p no:xdist tests/browser/test_guide_screenshots.py

lint: $(VENV)/.installed-dev ## Ruff (lint and format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	SECRET_KEY=lint DATABASE_URL=postgres://localhost/lint REDIS_URL=redis://localhost:6379/0 $(VENV)/bin/mypy

format: $(VENV)/.installed-dev ## Format and fix what ruff can
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

check-migrations: $(VENV)/.installed-dev ## Fail when models and migrations differ
	$(PY) manage.py makemigrations --check --dry-run

# Each benchmark seeds its own rows in the development database, times them
# beside the anchor page and rolls back (docs/benchmarks.md). They run as the
# database owner: the larger ones seed with INSERT ... SELECT and the audit one
# lifts the bookings' exclusion constraints inside its rolled-back transaction.
BENCH = $(SERVICES) --name run -- bash -c '$(PY) manage.py migrate --no-input -v 0 && DATABASE_URL="$$DATABASE_OWNER_URL" $(PY) manage.py $(1)'

bench: bench-search bench-calendar bench-audit bench-followups bench-reminders ## All benchmarks (about 40 minutes); record results in docs/benchmarks.md

bench-search: $(VENV)/.installed-run ## Patient search at 50,000 and 500,000 patients
	$(call BENCH,benchmark_search --patients 50000 500000)

bench-calendar: $(VENV)/.installed-run ## Week view with 400 and 800 bookings (twenty practitioners, clinical records)
	$(call BENCH,benchmark_calendar)

bench-audit: $(VENV)/.installed-run ## Audit log, dashboard, follow-up list at 300,000 and 3,000,000 audit events
	$(call BENCH,benchmark_audit)

bench-followups: $(VENV)/.installed-run ## The reminders follow-up list at 400,000 reminders
	$(call BENCH,benchmark_followups)

bench-reminders: $(VENV)/.installed-run ## Reminder dispatch and batch recall
	$(call BENCH,benchmark_reminders) && $(call BENCH,benchmark_recall)

# gunicorn as production runs it, 30 simulated staff signed in as the three
# roles for 60 s (Locust); the figures land in var/loadtest/. USERS, DURATION,
# WORKERS and THREADS change the run (tests/load/run.py).
USERS ?= 30
DURATION ?= 60
loadtest: system-deps-run $(VENV)/.installed-dev ## Load test: 30 staff for 60 s against 127.0.0.1; fails on any error (var/loadtest/)
	$(SERVICES) --name run -- $(PY) -m tests.load.run --users $(USERS) --duration $(DURATION) \
	  $(if $(WORKERS),--workers $(WORKERS)) $(if $(THREADS),--threads $(THREADS))

manage: $(VENV)/.installed-run ## Run a manage.py command: make manage ARGS="staff_invite you@clinic.example --first-name Alex"
	$(PY) manage.py $(ARGS)

shell: $(VENV)/.installed-run ## Django shell on the local database
	$(PY) manage.py shell

clean: ## Remove the virtual environment, front-end packages and collected static files (keeps var/)
	rm -rf $(VENV) node_modules staticfiles .pytest_cache .mypy_cache .ruff_cache
