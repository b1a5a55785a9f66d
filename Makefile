# `make run` and `make test` set up everything they need on a fresh machine (Python 3.11+ on the PATH).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export HOST ?= 127.0.0.1
export PORT ?= 8000

.PHONY: run worker migrate test lint bench clean

# What runs (`make run`): the service and the worker's PyTorch. The test tools come only with `make test`.
RUN_STAMP := $(VENV)/.installed-run
# Everything, test tools included (`make test`; the name bench/wheels.sh and older checkouts know).
STAMP := $(VENV)/.installed
DASHBOARD := http://$(HOST):$(PORT)/

$(PY):
	@echo "==> Creating the virtual environment $(VENV) (once)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(PY)
	@echo "==> Installing the service (FastAPI, SQLAlchemy, Alembic, …): under a minute"
	$(PY) -m pip install --quiet -e .
	@echo "==> Installing the worker's PyTorch, torchvision and matplotlib: a few GB the first time, several minutes"
	$(PY) -m pip install --quiet -e '.[worker]'
	touch $@

$(STAMP): $(RUN_STAMP)
	@echo "==> Installing the test tools (pytest, ruff, mypy, Playwright, moto, Schemathesis, …)"
	$(PY) -m pip install --quiet -e '.[worker,dev]'
	touch $@

migrate: $(RUN_STAMP)
	@echo "==> Bringing the database up to date (alembic upgrade head)"
	$(PY) -m alembic upgrade head

# The API and $(WORKERS) workers (default 1; `auto`: one per GPU), each restarted when it dies; a dead worker's job
# is taken back at once. Ctrl-C or SIGTERM to make stops them all, workers handing their jobs back.
# `exec`: the supervisor itself gets make's signals, with no shell in between.
run: migrate
	@echo "==> Starting the API and $${WORKERS:-1} worker(s); Ctrl-C stops them all"
	@echo "==> The dashboard: $(DASHBOARD)  (the API's docs: $(DASHBOARD)docs), in a few seconds"
	exec $(PY) -m service.supervise

worker: migrate
	$(PY) -m worker

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# pytest exits 5 when it collected nothing, which here can only mean the suite went missing: fail loudly.
# Two processes (pytest-xdist), a module each at a time, each pinned to its share of the cores by tests/conftest.py:
# the tests train and start processes for real, so two keep both cores busy (about 13 min on 2 cores: see the README).
test: lint
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
