# Two entry points: `make run` (install and start the console) and `make test` (install and run every test).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test install install-test system-deps demo clean sky

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(PY) -m pip install -q -r requirements-test.txt
	touch $@

install: $(VENV)/.installed

# SkyPilot in its own virtualenv (its click pin conflicts with the other SDKs); the console runs it as a
# subprocess. About 1.5 min and 460 MB. `make test` builds it when the index has skypilot and goes on without it
# (the tests that need it skip) when it does not.
SKY_VENV ?= .venv-sky
SKY_REQ ?= skypilot==0.14.1

$(SKY_VENV)/.installed:
	$(PYTHON) -m venv $(SKY_VENV)
	$(SKY_VENV)/bin/python -m pip install -q "$(SKY_REQ)"
	echo "$(SKY_REQ)" > $@

sky: $(SKY_VENV)/.installed

install-test: $(VENV)/.installed-test system-deps

# Headless Chromium and its driver for the browser tests; PostgreSQL 15 for the team-mode tests (the tests
# start their own server from these binaries).
system-deps:
	@./scripts/system-deps.sh

demo: install
	$(PY) -m core demo --if-missing

run: install demo
	$(PY) -m streamlit run streamlit_app.py --server.port $(PORT) --server.headless true

test: install-test
	@$(MAKE) --no-print-directory sky || echo "SkyPilot could not be installed; its tests will skip."
	$(PY) -m pytest

clean:
	rm -rf $(VENV) $(SKY_VENV) .pytest_cache test-artifacts
