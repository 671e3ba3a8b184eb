# CareLedger. `make serve` and `make test` need nothing else installed but Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8000
# openapi-python-client generates the client that tests/client drives; its dependencies
# clash with the project's, so it has a venv of its own.
GENERATOR_VERSION := 0.29.1
GENERATOR := $(VENV)/generator/.installed-$(GENERATOR_VERSION)
# `make fuzz`: examples per operation (CI's `make test` runs 100) and extra pytest arguments.
EXAMPLES ?= 1000
PYTEST_ARGS ?=

.PHONY: serve test fuzz faults lint format install clean bench screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

$(GENERATOR): | $(BIN)/python
	rm -rf $(VENV)/generator
	$(PYTHON) -m venv $(VENV)/generator
	$(VENV)/generator/bin/pip install --quiet openapi-python-client==$(GENERATOR_VERSION)
	touch $(GENERATOR)

install: $(STAMP) $(GENERATOR)

serve: $(STAMP)
	$(BIN)/careledger serve --host $(HOST) --port $(PORT)

test: $(STAMP) $(GENERATOR)
	$(BIN)/pytest -q

# The console's browser stories, keeping their screenshots in docs/console/ (the SQLite
# run's; `make test` keeps them in a scratch folder and leaves the checkout unchanged).
screenshots: $(STAMP)
	CARELEDGER_SCREENSHOTS=docs $(BIN)/pytest -q tests/e2e -k "console and sqlite" $(PYTEST_ARGS)

# Schemathesis at EXAMPLES per operation, every role, both backends, with a new seed each
# run (printed with any failure; set CARELEDGER_FUZZ_SEED to repeat one).
fuzz: $(STAMP)
	CARELEDGER_FUZZ_EXAMPLES=$(EXAMPLES) \
	CARELEDGER_FUZZ_SEED=$${CARELEDGER_FUZZ_SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')} \
	$(BIN)/pytest -q tests/fuzz/test_schemathesis.py $(PYTEST_ARGS)

# The fault suite at full size (CI's `make test` runs the short one), with the NATS
# restart and cluster experiments of tests/e2e; ends with a table of its figures. Needs
# root (a private PostgreSQL run as the postgres user, a tmpfs), as CI has.
faults: $(STAMP)
	CARELEDGER_FAULTS=full nice -n 5 $(BIN)/pytest -q tests/faults \
	  tests/e2e/test_relay_nats_restart.py tests/e2e/test_relay_nats_cluster.py $(PYTEST_ARGS)

# Ratios measured in one run (absolute times on shared machines are noise). Quick mode
# by default; `make bench FULL=1` for the full one. Regenerates docs/benchmarks.md's table.
# The HTTP load comes from wrk, a compiled client (Debian's package), not from Python.
bench: $(STAMP)
	@command -v wrk >/dev/null || { echo "bench: wrk is not installed; install it with: apt-get install -y wrk"; exit 2; }
	$(BIN)/python -m bench.run $(if $(FULL),--full,)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict domain application
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
