# Two commands for a newcomer: `make dev` runs everything locally, `make test` runs the test suite.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint bench install docs

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/hafi-realtime dev

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.likes

# docs/api.md from the app's OpenAPI schema (tests/test_docs.py fails when it is stale).
docs: $(STAMP)
	$(BIN)/python -m core.api.reference
