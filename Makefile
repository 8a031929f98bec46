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

test: install
	$(BIN)/python -m pytest
	@echo "--- the API and workflow suites again, with records on PostgreSQL ---"
	IOP_TEST_RECORDS=postgresql $(BIN)/python -m pytest tests/api tests/workflows

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

bench: install
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.lab_ingest
