# Two commands for a newcomer: `make dev` runs everything locally, `make test` runs the test suite.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The project runs on Python 3.12, the version Lambda (python3.12) and Vercel deploy: python3.12 on PATH, else
# pyenv's newest 3.12.x (pyenv's shims answer for versions that are not selected, so each candidate must run).
PYTHON ?= $(shell for candidate in python3.12 $$(ls -d "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/3.12.*/bin/python \
	2>/dev/null | sort -V -r); do "$$candidate" -c pass 2>/dev/null && { echo "$$candidate"; break; }; done)

.PHONY: dev test lint bench install docs deploy-check

$(STAMP): pyproject.toml
	@[ -n "$(PYTHON)" ] || { echo "Python 3.12 is needed: put python3.12 on PATH (or install it with pyenv)" >&2; exit 1; }
	@# A venv of another Python (made before the move to 3.12) is made again, not mixed.
	$(BIN)/python -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null || $(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# DEV_ARGS go to `hafi-realtime dev`: make dev DEV_ARGS="--port 8001 --provider ably"
dev: $(STAMP)
	$(BIN)/hafi-realtime dev $(DEV_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Every benchmark, each peer measured in the same run; results in bench/results/. BENCH_ARGS=--smoke: tiny, fast.
bench: $(STAMP)
	npm ci --prefix bench/js --no-audit --no-fund --silent
	npm ci --prefix tests/js --no-audit --no-fund --silent
	$(BIN)/python -m bench $(BENCH_ARGS)

# docs/api.md from the app's OpenAPI schema (tests/test_docs.py fails when it is stale).
docs: $(STAMP)
	$(BIN)/python -m core.api.reference

# The deploy artifacts run as deployed: the Lambda zip under AWS's runtime emulator, serverless.yml packaged and
# linted offline, `vercel build`'s function served, INIT timed against a bare FastAPI + Mangum zip (tests/deploy/).
deploy-check: $(STAMP)
	$(BIN)/python -m tests.deploy.check
