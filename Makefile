# kbops — `make demo` runs the whole loop on the sample store; `make test` runs the tests.
# Both set everything up on first use (.venv, the package, Airflow's metadata DB under var/).

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export KBOPS_HOME ?= $(CURDIR)/var
export AIRFLOW_HOME := $(CURDIR)/var/airflow
export AIRFLOW_CONFIG := $(CURDIR)/airflow.cfg
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN := sqlite:///$(CURDIR)/var/airflow/airflow.db
export AIRFLOW__LOGGING__BASE_LOG_FOLDER := $(CURDIR)/var/airflow/logs
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export GX_ANALYTICS_ENABLED := false
export PYTHONWARNINGS := ignore

.PHONY: setup demo test test-fast lint serve smoke-cluster bench clean chromium

setup: $(STAMP) var/airflow/airflow.db

# torch is pinned first so nothing can pull a CUDA build (the CPU wheel is on local disk).
# `.[all,dev]`: the core library plus Airflow (`airflow`), the HTTP doors (`serve`) and the
# test/lint tools (`dev`); a bot-only host would install `kbops[serve]` alone.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	@touch $(STAMP)

var/airflow/airflow.db: $(STAMP)
	@mkdir -p var/airflow/logs
	$(BIN)/airflow db migrate >/dev/null
	@test -f $@

demo: setup
	$(BIN)/python -m kbops.demo

# ruff (style, imports, likely bugs) and mypy (types) over the whole tree; settings in pyproject.toml.
# Both always run, so one `make lint` lists every finding; `ruff check --fix .` fixes the [*] ones.
lint: $(STAMP)
	@status=0; $(BIN)/ruff check . || status=1; $(BIN)/mypy kbops || status=1; exit $$status

test: setup lint
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

# Port 8000: 8080 is Airflow's api-server default (a host running both keeps both).
serve: setup
	$(BIN)/kbops serve --host 127.0.0.1 --port 8000

# A whole cluster on this machine with real processes (deploy/smoke_cluster.py): PostgreSQL (Airflow
# metadata + KB, private databases), Redis (Celery broker + change events), an S3 server (moto) as the
# release store, Airflow api-server/scheduler/dag-processor/triggerer on CeleryExecutor, two Celery
# workers, two `kbops serve` replicas. Changes a price through an event, kills a worker mid-task,
# prints the measured freshness latency, stops everything it started.
smoke-cluster: setup
	$(BIN)/python deploy/smoke_cluster.py

# Debian's Chromium for the browser test (as root; .ci/run does this too). Without it the test skips.
chromium:
	@test -x /usr/bin/chromium || { test "$$(id -u)" = 0 && apt-get install -y chromium; } || echo "install Debian's chromium as root to run tests/serve/test_browser.py"

clean:
	rm -rf var/ .pytest_cache .mypy_cache .ruff_cache
