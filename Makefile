# abuse-stream: `make help` lists the targets. A fresh clone needs only `make demo` and `make test`:
# both create the virtualenv (.venv) and install the package with its dev extras on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install demo test test-fast lint format typecheck bench clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install abuse-stream with its dev extras

demo: $(STAMP) ## the whole pipeline on embedded defaults (Tansu broker, SQLite), ending in a report
	$(BIN)/abuse-stream demo

test: $(STAMP) ## the whole test suite, integration tests included (needs Postgres on 127.0.0.1:5432)
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: $(STAMP) ## unit tests only (no broker, no database)
	$(BIN)/pytest -m "not integration and not slow" $(PYTEST_ARGS)

lint: $(STAMP) ## ruff lint + format check
	$(BIN)/ruff check abuse_stream tests bench
	$(BIN)/ruff format --check abuse_stream tests bench

format: $(STAMP) ## ruff format + autofix
	$(BIN)/ruff format abuse_stream tests bench
	$(BIN)/ruff check --fix abuse_stream tests bench

typecheck: $(STAMP) ## mypy on the package
	$(BIN)/mypy abuse_stream

BENCH_ARGS ?=
bench: $(STAMP) ## benchmarks, one table (figures, not pass/fail; Kafka rows want Postgres): BENCH_ARGS=--quick
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean: ## remove the virtualenv and generated files
	rm -rf $(VENV) demo-out bench/out .pytest_cache .mypy_cache .ruff_cache
