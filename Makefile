# The two commands: `make demo` (set up, then start the web app on the bundled model: it says which
# address to open) and `make test` (set up, then run the whole test suite). Both work on a fresh machine
# with Python 3; the browser tests also need Chromium, which `make test` installs with apt-get when it
# can (root, Debian/Ubuntu). `make demo-cli` reads the bundled sample images on the command line.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Real datasets for the tests: $SCRAWL_DATA, else ../shared/data beside the repository.
export SCRAWL_DATA ?= $(abspath ../shared/data)

# The web app's address for `make demo` (127.0.0.1: this machine only).
HOST ?= 127.0.0.1
PORT ?= 8000
# The browser tests drive this Chromium (Debian's package) with Playwright.
CHROMIUM := /usr/bin/chromium

.PHONY: setup demo demo-cli browser test test-fast clean

# Set-up says what it is doing: a line per step, and pip's own output (each package, with a progress
# bar for downloads on a terminal), so a first install of a few minutes never looks stuck.
$(STAMP): pyproject.toml constraints.txt
	@echo "==> [1/2] creating the virtual environment $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> [2/2] installing Scrawl and its dependencies (PyTorch, ONNX Runtime, OpenCV, ...) into $(VENV):" \
	  "a few minutes the first time"
	$(BIN)/python -m pip install --progress-bar on -c constraints.txt -e '.[test]'
	touch $(STAMP)
	@echo "==> set-up done: $(VENV) is ready"

setup: $(STAMP)

demo: setup
	@echo "==> starting the web app (scrawl serve): it says which address to open once its models are loaded"
	$(BIN)/scrawl serve --host $(HOST) --port $(PORT)

demo-cli: setup
	$(BIN)/scrawl predict src/scrawl/assets/samples

# Chromium for the browser tests: installed when missing and possible; otherwise those tests skip
# (and fail in CI, where CI is set).
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Chromium for the browser tests (apt-get)"; \
	    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) \
	      || echo "warning: could not install Chromium: the browser tests will skip (fail in CI)"; \
	  else \
	    echo "warning: $(CHROMIUM) is missing and apt-get (as root) is not available: the browser tests will skip (fail in CI)"; \
	  fi; \
	fi

test: setup browser
	$(BIN)/python -m pytest

test-fast: setup browser
	$(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
