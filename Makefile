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

# The API and one worker; Ctrl-C or SIGTERM to make stops both.
run: migrate
	@$(PY) -m worker & worker=$$!; \
	$(PY) -m service & api=$$!; \
	trap 'kill -TERM $$api $$worker 2>/dev/null; wait $$api $$worker; exit 0' INT TERM; \
	echo "API on http://$(HOST):$(PORT) (Swagger UI at /docs), worker pid $$worker"; \
	wait -n $$api $$worker; kill -TERM $$api $$worker 2>/dev/null; wait $$api $$worker

worker: migrate
	$(PY) -m worker

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# pytest exits 5 when it collected nothing, which here can only mean the suite went missing: fail loudly.
test: lint
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
