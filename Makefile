# vneid-sync — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
PYTEST_ARGS ?=

.PHONY: help install run test test-unit test-integration test-e2e lint format bench bench-scale services clean generate docs

help: ## Show this help
	@awk 'BEGIN {FS = ":.*?## "} /^[a-zA-Z_-]+:.*?## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv \
		|| python3 -m pip install --quiet --user uv || python3 -m pip install --quiet --break-system-packages uv
	$(UV) sync --frozen --extra dev --python python3
	@touch $@

install: $(VENV)/.installed ## Create .venv and install the project with its dev extras (from uv.lock)

run: install ## Run the whole job end to end on embedded defaults (demo HIS, simulator, real worker)
	$(VENV)/bin/vneid-sync demo run

test: install ## Run unit + integration + e2e tests (needs PostgreSQL, MariaDB, Redis: see `make services`)
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-unit: install ## Run the unit tests only
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: install ## Run the integration tests only
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: install ## Run the end-to-end tests only
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

lint: install ## ruff check, ruff format --check, mypy --strict, import-linter (the three floors)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy worker adapters schemas
	$(VENV)/bin/lint-imports

format: install ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

generate: install ## Regenerate code and XSDs from the spec CSVs (domain model, XSDs, docs/configuration.md)
	$(PY) -m schemas.codegen.domain_model
	$(PY) -m schemas.codegen.xsd
	$(PY) -m worker.docs_gen

bench: install ## Run the benchmarks (writes docs/benchmarks.md)
	$(PY) -m bench.run

bench-scale: install ## Scale runs: 200k and 1M encounters on PostgreSQL (long; not in CI)
	$(PY) -m bench.scale

services: ## Start local PostgreSQL, Redis and MariaDB if they are not running
	bash .ci/services.sh

clean: ## Remove the venv, caches and the embedded data directory
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis var test-artifacts
