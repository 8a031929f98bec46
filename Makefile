# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: install
	$(BIN)/iop dev

# Tests run in TEST_WORKERS processes (pytest-xdist, a file per process at a time): most of a test's time is
# spent waiting on Temporal servers, so two processes use a 2-core machine well.
TEST_WORKERS ?= 2
# Records are kept on SQLite, and on PostgreSQL too where the database's locking matters: the store tests and
# the API and workflow suites of tests/conftest.py's ON_BOTH_DATABASES run on both, in the same run.
test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

# BENCH_ARGS / LAB_BENCH_ARGS: e.g. BENCH_ARGS="--participants 10000" for (c) at the issue's size.
# (b) and the HL7 row are measured again with the worker in BENCH_WORKERS `iop worker` processes (one per
# core, as IOP_WORKERS defaults to), and (a) with the API as `iop api` in BENCH_API_WORKERS processes.
BENCH_WORKERS ?= $(shell $(PYTHON) -c 'import os; print(os.cpu_count() or 1)')
BENCH_API_WORKERS ?= 2
bench: install
	$(BIN)/python -m bench.run --worker-processes $(BENCH_WORKERS) --api-processes $(BENCH_API_WORKERS) $(BENCH_ARGS)
	$(BIN)/python -m bench.lab_ingest --worker-processes $(BENCH_WORKERS) $(LAB_BENCH_ARGS)
	$(BIN)/python -m bench.healthz_under_parse
