# The two commands a new user needs: `make dev` (run the whole stack locally) and `make test`.
# Every target installs what it needs itself (Python venv, npm packages), idempotently.

# The app runs on Python 3.13 in Azure (pyproject.toml requires-python, infra/main.bicep pythonVersion), so the
# venv does too. PYTHON=/path/to/python3.13 wins; else the first that runs and is 3.13 of: python3.13 and
# python3 on PATH, the pyenv-installed 3.13 (a pyenv shim can exist while its version is not selected).
PYTHON_VERSION := 3.13
IS_PYTHON_VERSION := 'import sys; ok = "%d.%d" % sys.version_info[:2] == "$(PYTHON_VERSION)"; ok and print(sys.executable); sys.exit(not ok)'
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell for p in python$(PYTHON_VERSION) python3 "$$(pyenv prefix $(PYTHON_VERSION) 2>/dev/null)/bin/python$(PYTHON_VERSION)" \
	$${PYENV_ROOT:-$$HOME/.pyenv}/versions/$(PYTHON_VERSION)*/bin/python$(PYTHON_VERSION); do \
	"$$p" -c $(IS_PYTHON_VERSION) 2>/dev/null && break; done)
endif
INSTALL_PYTHON := Install it, e.g. 'apt-get install python$(PYTHON_VERSION)-venv' (Debian 13, Ubuntu 24.10+), \
	'pyenv install $(PYTHON_VERSION)' or 'uv python install $(PYTHON_VERSION)', or run make with PYTHON=/path/to/python$(PYTHON_VERSION)
NO_PYTHON := Python $(PYTHON_VERSION) is required and was not found (tried python$(PYTHON_VERSION), python3, pyenv). $(INSTALL_PYTHON)
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed-$(PYTHON_VERSION)
# A venv whose interpreter is not a working $(PYTHON_VERSION) (made with another Python, or its Python was removed)
# is rebuilt even when its stamp is newer than the requirement files.
VENV_STALE := $(if $(shell $(PY) -c $(IS_PYTHON_VERSION) 2>/dev/null),,FORCE)
NODE_STAMP := node_modules/.installed
CLIENT_JS := clients/js
CLIENT_JS_STAMP := $(CLIENT_JS)/node_modules/.installed

.PHONY: dev demo test test-py test-js client-js test-client-js chromium lint typecheck unit deps clean help bench \
	bench-requests run-pytest run-js-tests run-client-js-tests FORCE

# pytest workers (pytest-xdist). The suite mostly waits (ack deadlines, queue polling, stack starts), so more
# workers than this machine's 2 cores pay off; PYTEST_WORKERS=0 runs every test serially in one process.
PYTEST_WORKERS ?= 3
# Extra pytest arguments, e.g. `make test-py PYTEST_ARGS='-k restart -x'`.
PYTEST_ARGS ?=

help:
	@echo "make dev    run Azurite, the Web PubSub and Notification Hubs emulators and the function app locally"
	@echo "make demo   run the end-to-end demo against make dev (or a private stack it starts)"
	@echo "make test   run the linters, the type checker and every test"
	@echo "make bench  measure the notifier against the floors on a private local stack (docs/PERFORMANCE.md)"
	@echo "make bench-requests  requests per notification by path, counted at the wire (about 20 s)"
	@echo "make deps   install the Python venv and the npm packages (done by the targets above)"

$(PY_STAMP): requirements.txt requirements-dev.txt $(VENV_STALE)
	@test -n "$(PYTHON)" || { echo "$(NO_PYTHON)" >&2; exit 1; }
	@$(PYTHON) -c $(IS_PYTHON_VERSION) >/dev/null 2>&1 || { \
		echo "PYTHON=$(PYTHON) is not a working Python $(PYTHON_VERSION) ($$($(PYTHON) -V 2>&1)). $(INSTALL_PYTHON)" >&2; exit 1; }
	@if [ -e $(VENV) ] && ! $(PY) -c $(IS_PYTHON_VERSION) >/dev/null 2>&1; then \
		echo "Recreating $(VENV): it was not made with Python $(PYTHON_VERSION)"; rm -rf $(VENV); fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

deps: $(PY_STAMP) $(NODE_STAMP)

lint: $(PY_STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(PY_STAMP)
	$(VENV)/bin/mypy

# The linters and the three suites run at the same time (the suites mostly wait); -O prints each one's output
# in one block when it ends, and any failing part fails `make test` (once the others have finished).
test: deps client-js chromium
	@$(MAKE) --no-print-directory -j5 -O lint typecheck run-pytest run-js-tests run-client-js-tests

# pytest alone: each test file runs whole on one worker (--dist loadfile), so a module's private stack starts
# once; files are handed out in the order tests/conftest.py gives them (the longest first).
test-py: deps
	@$(MAKE) --no-print-directory run-pytest

run-pytest:
	$(PY) -m pytest -q $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder) $(PYTEST_ARGS)

# The JavaScript conformance suite (tests/js/README.md): Microsoft's npm SDKs against the emulators and the
# local host. Files run in parallel; --test-force-exit because the SDK's keep-alive timers outlive stop().
# HTTPS tests: the emulators serve the certificate in TEST_TLS_DIR, which Node trusts from the start.
TEST_TLS_DIR := $(CURDIR)/.devstack/test-tls
test-js: deps
	@$(MAKE) --no-print-directory run-js-tests

run-js-tests:
	$(PY) -m devstack.tls $(TEST_TLS_DIR) >/dev/null
	DEVSTACK_TLS_DIR=$(TEST_TLS_DIR) NODE_EXTRA_CA_CERTS=$(TEST_TLS_DIR)/cert.pem \
		node --test --test-force-exit --test-concurrency=8 tests/js/

# The TypeScript client SDK (clients/js/README.md): its own package.json and lockfile. `client-js` builds the
# library, its tests and the browser bundle the demo page loads; its integration and browser tests run in
# pytest (tests/e2e/test_client_protocol.py) against a private stack.
$(CLIENT_JS_STAMP): $(CLIENT_JS)/package.json $(CLIENT_JS)/package-lock.json
	cd $(CLIENT_JS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

client-js: $(CLIENT_JS_STAMP)
	cd $(CLIENT_JS) && npm run --silent build

test-client-js: client-js
	@$(MAKE) --no-print-directory run-client-js-tests

run-client-js-tests:
	cd $(CLIENT_JS) && npm test --silent && echo "clients/js: unit tests passed"

# Debian's Chromium for the browser demo test (driven by playwright-core; no browser download), installed
# once when missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser test"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; \
	  else echo "chromium is missing: install it as root with 'apt-get install chromium'" >&2; exit 1; fi; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

dev: deps client-js
	@test -f local.settings.json || { cp local.settings.json.example local.settings.json 2>/dev/null && echo "wrote local.settings.json from the example"; } || true
	$(PY) -m devstack up

demo: deps
	$(PY) -m devstack demo

bench: deps
	$(PY) -m bench

bench-requests: deps
	$(PY) -m bench --requests

FORCE:

clean:
	rm -rf $(VENV) node_modules $(CLIENT_JS)/node_modules $(CLIENT_JS)/dist .devstack .mypy_cache .ruff_cache .pytest_cache
