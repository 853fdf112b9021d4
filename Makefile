# Quiver: two commands on a fresh Debian 12 machine (root or not).
#   make demo   embedded PostgreSQL + demo data + server + a tour of example queries
#   make test   install what the tests need, start the real services, run the whole suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_ARGS ?=

.PHONY: demo test install services-start services-stop lint typecheck bench fuzz clean

$(STAMP): pyproject.toml
	scripts/install-system-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) scripts/fetch-graphiql
	$(PY) scripts/flightsql-proto
	$(PY) scripts/fetch-jdbc-driver
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/quiver demo $(DEMO_ARGS)

services-start: $(STAMP)
	scripts/services start

services-stop:
	scripts/services stop

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: $(STAMP)
	scripts/install-system-deps
	$(PY) scripts/fetch-graphiql
	$(PY) scripts/flightsql-proto
	$(PY) scripts/fetch-jdbc-driver
	scripts/services start
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/mypy
	eval "$$(scripts/services env)" && $(PY) -m pytest

bench: $(STAMP)
	scripts/install-system-deps
	scripts/services start
	eval "$$(scripts/services env)" && $(PY) -m benchmarks.json_plane
	eval "$$(scripts/services env)" && $(PY) -m benchmarks.query_planes
	eval "$$(scripts/services env)" && $(PY) -m benchmarks.events
	eval "$$(scripts/services env)" && $(PY) -m benchmarks.capture
	eval "$$(scripts/services env)" && $(PY) -m benchmarks.live_lag --output docs/benchmarks.md
	eval "$$(scripts/services env)" && $(PY) -m benchmarks.live_lag --orders 1000000 --output docs/benchmarks.md

# The generated tests with many more examples than `make test` runs (minutes, not seconds).
fuzz: $(STAMP)
	scripts/services start
	eval "$$(scripts/services env)" && QUIVER_CAPTURE_EXAMPLES=2000 QUIVER_BACKFILL_EXAMPLES=1000 QUIVER_LIVE_EXAMPLES=1000 $(PY) -m pytest -q \
		tests/integration/events/test_capture_generated.py tests/integration/events/test_backfill_generated.py \
		tests/integration/live/test_generated.py

clean: services-stop
	rm -rf .services
