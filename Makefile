# One entry point for people and CI. Every target installs what it needs by itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TAML := $(VENV)/bin/taml
STAMP := $(VENV)/.installed
DATA_ROOT ?= ./data
ARTIFACT_ROOT ?= ./artifacts
# `make run` works in its own folder, made anew each time: an 8-day simulated history in the
# `demo` density (Ali-CCP's impressions per user and per item, ~300 conversions a day).
DEMO ?= ./demo
RUN_START ?= 2026-11-01
RUN_DAYS ?= 8
RUN_IMPRESSIONS ?= 60000
RUN_DENSITY ?= demo
PYTEST_ARGS ?=

.PHONY: install system-deps run test bench compile serve lint clean config

install: $(STAMP)

# Re-installs only when the lock file or the project metadata change.
# (This machine's pip config names local indexes that may be absent: drop those warnings only.)
PIP := set -o pipefail; $(PY) -m pip install --quiet --disable-pip-version-check
QUIET := 2>&1 | { grep -v "WARNING: Location" || true; }
$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing the pinned stack into $(VENV) (first time: several minutes)"
	@$(PIP) -r requirements.lock $(QUIET)
	@$(PIP) --no-deps --no-build-isolation -e . $(QUIET)
	@touch $(STAMP)

# The daily pipeline end to end on a simulated history (embedded local defaults).
run: $(STAMP)
	rm -rf $(DEMO)
	$(TAML) simulate --out $(DEMO)/data --start $(RUN_START) --days $$(( $(RUN_DAYS) + 1 )) \
		--impressions-per-day $(RUN_IMPRESSIONS) --seed 7 --set simulator.density=$(RUN_DENSITY)
	$(TAML) backfill --start $(RUN_START) --days $(RUN_DAYS) \
		--data-root $(DEMO)/data --artifact-root $(DEMO)/artifacts

# Debian packages some tests start on loopback (redis-server, chromium): installed when missing.
system-deps:
	@tools/system-deps.sh

test: $(STAMP) system-deps
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP) system-deps
	$(TAML) bench all --out-dir bench-out

compile: $(STAMP)
	$(TAML) compile

serve: $(STAMP)
	$(TAML) serve --data-root $(DATA_ROOT) --artifact-root $(ARTIFACT_ROOT)

# config/default.yaml is generated from the schema (taml/core/config.py, model/spec.py): never edit it
# by hand. Written aside first, so a failing schema leaves the old file in place.
config: $(STAMP)
	$(PY) -m taml.core.config_defaults > config/default.yaml.new
	mv config/default.yaml.new config/default.yaml

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(DEMO) bench-out .pytest_cache
