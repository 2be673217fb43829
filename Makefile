# finmon: `make run` starts the monitor on the bundled demo feed; `make test` runs the test suite.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install run test lint format clean bench services browser

install: $(STAMP)

# torch goes first, pinned, so pip takes the local CPU build instead of pulling a multi-GB CUDA one.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/finmon up --feed demo --speed 3600

test: install services browser
	$(BIN)/pytest -q -ra

# Debian's chromium for the dashboard's real-browser test (Playwright drives it; no browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium for the browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

# PostgreSQL is started before sessions on this kind of machine; start it if a clean CI box has it stopped.
services:
	@pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null || \
	  (command -v pg_ctlcluster >/dev/null && pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start) || \
	  echo "warning: PostgreSQL is not reachable at 127.0.0.1:5432; PostgreSQL tests will be skipped"

lint: install
	$(BIN)/ruff check monitor pipelines dashboards tests benchmarks
	$(BIN)/mypy monitor

format: install
	$(BIN)/ruff check --fix monitor pipelines dashboards tests benchmarks
	$(BIN)/ruff format monitor pipelines dashboards tests benchmarks

clean:
	rm -rf $(VENV) .finmon .pytest_cache .mypy_cache .ruff_cache *.egg-info
