# Tarmac — every command a person or cron needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
ENV    ?= local
FROM   ?= 2013-01-01T00:00:00Z
# the last flights of 31 Dec 2013 (local) depart and land after midnight UTC
TO     ?= 2014-01-02T00:00:00Z
# the dashboard's port (make dashboard, make demo); DEMO_CYCLES=N stops the demo after N rounds;
# DEMO_SPEED=S replays at S x instead of 24x (faster: the pills may turn amber, see demo.py)
DASHBOARD_PORT ?= 8866
# JupyterLab's port (make lab)
LAB_PORT ?= 8888
DEMO_CYCLES ?=
DEMO_SPEED ?=
# make test's parallel workers (pytest-xdist, a test module stays in one worker; 0 = one process)
TEST_WORKERS ?= 3
export TARMAC_LOG_FORMAT ?= kv

.DEFAULT_GOAL := help
.PHONY: help install system-deps test-deps stack-up stack-down stack-status demo smoke backfill test test-unit \
        lint format clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m pip check
	@touch $@

install: $(VENV)/.installed ## create .venv and install Tarmac with pinned dependencies

system-deps: ## install OS packages a fresh machine lacks (Debian, as root): chromium, cron, npm
	@for tool in java mvn go; do command -v $$tool >/dev/null || \
	  { echo "missing '$$tool': install a JDK 17+, Maven 3.8+ and Go 1.22+ (see README)"; exit 1; }; done
	@missing=""; test -x /usr/bin/chromium || missing="$$missing chromium"; \
	  command -v crontab >/dev/null || missing="$$missing cron"; \
	  command -v npm >/dev/null || missing="$$missing npm"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  fi

stack-up: install ## start the embedded Kafka + FerretDB (+ fetch Spark's Kafka jars) for ENV
	$(PY) -m pipelines stack up --env $(ENV)

stack-down: install ## stop what stack-up started for ENV
	$(PY) -m pipelines stack down --env $(ENV)

stack-status: install ## what runs, on which port, with which log
	$(PY) -m pipelines stack status --env $(ENV)

smoke: stack-up ## Kafka -> Spark -> MongoDB smoke path on ENV
	$(PY) -m pipelines smoke --env $(ENV) --produce 1000

demo: install ## the whole product live: stack, replay at 24x, the stream service, file jobs, dashboard (DEMO_CYCLES=N: N weather runs)
	$(PY) -m pipelines demo --env $(ENV) --port $(DASHBOARD_PORT) $(if $(DEMO_CYCLES),--cycles $(DEMO_CYCLES)) $(if $(DEMO_SPEED),--speed $(DEMO_SPEED))

.PHONY: stream-start stream-stop stream-status
stream-start: stack-up ## run the flight stream as a supervised service of ENV (log: outputs/logs/service-*)
	$(PY) -m pipelines service start flights_stream --env $(ENV)

stream-stop: install ## stop the flight stream service of ENV (SIGTERM, then SIGKILL after 60 s)
	$(PY) -m pipelines service stop flights_stream --env $(ENV)

stream-status: install ## the stream service: running?, restarts, last exit, age of its last batch
	$(PY) -m pipelines service status flights_stream --env $(ENV)

backfill: stack-up ## 2013 through the real path (replay -> Kafka -> Spark -> MongoDB); FROM=, TO= for a window
	$(PY) -m pipelines pipeline --env $(ENV) --start $(FROM) --end $(TO)

# The browser tests need Debian's chromium, the deck's test npm (reveal.js): installed here when
# we can (root with apt-get), otherwise one line says the command to run. Never skipped (conftest
# fails a run with a skipped test).
test-deps:
	@test -x /usr/bin/chromium && command -v npm >/dev/null && exit 0; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    $(MAKE) --no-print-directory system-deps; \
	  else echo "make test: chromium or npm is missing for the browser tests; run: sudo make system-deps"; \
	    exit 1; fi

test: install test-deps ## the whole test suite (starts and stops the `ci` stack itself)
	TARMAC_TEST_ENV=ci $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

test-unit: install ## tests/unit: pure logic, no service, no Spark, no network
	$(PY) -m pytest tests/unit

lint: install ## ruff
	$(VENV)/bin/ruff check pipelines tests bench
	$(VENV)/bin/ruff format --check pipelines tests bench

format: install
	$(VENV)/bin/ruff format pipelines tests bench
	$(VENV)/bin/ruff check --fix pipelines tests bench

clean: ## remove generated outputs (stack data included) — stop the stacks first
	$(PY) -m pipelines stack down --env local || true
	$(PY) -m pipelines stack down --env ci || true
	rm -rf outputs/* .pytest_cache

.PHONY: cron-install cron-remove
cron-install: install ## install cron/tarmac.crontab for this checkout into your crontab (idempotent)
	$(PY) -m pipelines cron install

cron-remove: install ## remove this checkout's lines from your crontab (nothing else)
	$(PY) -m pipelines cron remove

.PHONY: dashboard
dashboard: install ## the Voila dashboard of ENV on http://127.0.0.1:8866 (localhost only; DASHBOARD_PORT=)
	$(PY) -m pipelines dashboard --env $(ENV) --port $(DASHBOARD_PORT)

.PHONY: lab
lab: install ## JupyterLab on notebooks/ (kernel: this checkout, ENV's lake as raw.*, clean.*, serving.*; LAB_PORT=)
	$(PY) -m pipelines lab --env $(ENV) --port $(LAB_PORT)

.PHONY: slides
slides: install ## the deck: outputs/presentation/tarmac.slides.html (offline reveal.js) + tarmac.pdf, from ENV
	$(PY) -m pipelines slides --env $(ENV)
