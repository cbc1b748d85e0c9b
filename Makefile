# Every target works on a fresh clone: the virtualenv is made from pyproject.toml on first use.
# Nothing here may depend on a package installed by hand.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PURE_AND_TYPED := rules contracts outcomes settlement ledger

.PHONY: demo test lint typecheck ci bench bench-ledger clean

# Reinstalled whenever pyproject.toml is newer than the stamp, so a new dependency reaches everyone.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/settle demo

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict $(PURE_AND_TYPED)

ci: test lint typecheck

# Benchmarks print ratios measured side by side in one run; they are not part of `make test`.
bench: $(STAMP)
	$(BIN)/python bench/rules_batch.py

# 1,000,000 entries: about 3 minutes and 2 GB of memory on a 2-core machine.
bench-ledger: $(STAMP)
	$(BIN)/python bench/ledger.py

# 3,000,000 claim lines on PostgreSQL and SQLite against their floors: about 3 minutes on 2 cores.
.PHONY: bench-events
bench-events: $(STAMP)
	$(BIN)/python bench/events.py

# The MSSP expenditure aggregate over 3,000,000 claim lines, compiled against hand-written SQL on
# PostgreSQL and SQLite, and DuckDB on the same CSV: about 17 minutes on 2 cores (4 of them while
# a query is stopped at --give-up). DuckDB is the `bench` extra, installed here only.
.PHONY: bench-aggregates
bench-aggregates: $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	$(BIN)/python bench/aggregates.py

# Leaves settle.db alone: it is the embedded database, not a build product.
clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
