# `make run` and `make test` set up everything they need on a fresh machine (Python 3.11+ on the PATH).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HOST ?= 127.0.0.1
export PORT ?= 8000

.PHONY: run worker migrate test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[worker,dev]'
	touch $(STAMP)

migrate: $(STAMP)
	$(PY) -m alembic upgrade head

# The API and $(WORKERS) workers (default 1; `auto`: one per GPU), each restarted when it dies; a dead worker's job
# is taken back at once. Ctrl-C or SIGTERM to make stops them all, workers handing their jobs back.
# `exec`: the supervisor itself gets make's signals, with no shell in between.
run: migrate
	exec $(PY) -m service.supervise

worker: migrate
	$(PY) -m worker

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# pytest exits 5 when it collected nothing, which here can only mean the suite went missing: fail loudly.
# Two processes, each with its share of the cores (tests/conftest.py): while one waits on a lease, a process
# starting or a single-threaded request, the other trains. A module's tests stay in one process (loadfile), so
# that its module-scoped fixtures (a trained job) are made once; not loadgroup, whose groups pytest 9 ignores
# (pytest-xdist 3.8 tags them onto a node id attribute pytest no longer reads).
test: lint
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
