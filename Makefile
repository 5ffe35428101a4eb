# Two entry points: `make run` (install and start the console) and `make test` (install and run every test).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test install install-test system-deps demo clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(PY) -m pip install -q -r requirements-test.txt
	touch $@

install: $(VENV)/.installed

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
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
