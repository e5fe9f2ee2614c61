# The two commands: `make demo` (set up, then read the bundled sample images with the bundled model)
# and `make test` (set up, then run the whole test suite). Both work on a fresh machine with Python 3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Real datasets for the tests: $SCRAWL_DATA, else ../shared/data beside the repository.
export SCRAWL_DATA ?= $(abspath ../shared/data)

.PHONY: setup demo test test-fast clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/scrawl predict src/scrawl/assets/samples

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache
