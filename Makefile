# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
# `make demo` installs tidings with its runtime dependencies and the outbox extra the example
# uses; `make test` adds the dev tools.
PYTHON ?= python3
VENV ?= .venv
PIP := $(VENV)/bin/python -m pip --disable-pip-version-check
RUNTIME := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed

.PHONY: demo test bench install lint kafka-start kafka-stop clean

$(VENV)/bin/python:
	@echo "== Creating the virtualenv $(VENV)"
	$(PYTHON) -m venv $(VENV)

$(RUNTIME): pyproject.toml | $(VENV)/bin/python
	@echo "== Installing tidings, its runtime dependencies (pydantic, typer, rich, confluent-kafka) and the outbox extra the example uses (SQLAlchemy, drivers) into $(VENV); first run only"
	$(PIP) install --progress-bar on -e ".[outbox]"
	touch $@

$(STAMP): pyproject.toml $(RUNTIME)
	@echo "== Installing the dev tools (pytest, pytest-timeout, ruff, mypy, selenium) into $(VENV)"
	$(PIP) install -q -e ".[dev]"
	touch $@

install: $(STAMP)

demo: $(RUNTIME)
	$(VENV)/bin/tidings demo

test: $(STAMP)
	VENV=$(VENV) scripts/test

bench: $(STAMP)
	$(PIP) install -q -e ".[dev,bench]"
	$(VENV)/bin/python -m benchmarks
	$(VENV)/bin/python -m benchmarks.outbox
	$(VENV)/bin/python -m benchmarks.workers
	$(VENV)/bin/python -m benchmarks.exactly_once
	$(VENV)/bin/python -m benchmarks.observability --broker kafka

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests examples benchmarks
	$(VENV)/bin/ruff format --check src tests examples benchmarks
	$(VENV)/bin/mypy src

kafka-start:
	scripts/kafka start

kafka-stop:
	scripts/kafka stop

clean:
	rm -rf $(VENV) .tidings .mypy_cache .ruff_cache .pytest_cache
