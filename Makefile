# Everything a fresh machine needs comes from this file and pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup sysdeps demo preview serve test lint stress bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Quick start: a real send of the sample campaign to the embedded simulator. The sample list
# has invalid rows on purpose, so campaigner exits 3 ("finished, some rows not sent").
demo: $(STAMP)
	$(BIN)/campaigner send sample_data/whatsapp_template.toml --sandbox --yes || [ $$? -eq 3 ]

# The web app with sends going to the built-in simulator; it prints its address and, at the
# first start without CAMPAIGNER_WEB_PASSWORD, the password to sign in with.
serve: $(STAMP)
	$(BIN)/campaigner serve --sandbox --out reports

preview: $(STAMP)
	$(BIN)/campaigner preview sample_data/whatsapp_template.toml || [ $$? -eq 3 ]

lint: $(STAMP)
	$(BIN)/ruff check campaigner tests bench
	$(BIN)/ruff format --check campaigner tests bench
	$(BIN)/mypy

# The browser tests need Debian's chromium + chromium-driver and the shared rate budget tests
# need redis-server. Installed here when missing and running as root; otherwise those tests
# are skipped with the reason (and fail under CI=true).
SYSPKGS := chromium chromium-driver redis-server
sysdeps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && command -v redis-server >/dev/null; }; then \
	  echo "installing $(SYSPKGS) with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSPKGS) >/dev/null; \
	fi

test: lint sysdeps
	$(BIN)/pytest

# The crash, fault and signal tests, 10 times in a row: CI runs the suite once, so a test that
# fails one time in 20 would eventually fail it. Run this whenever those tests or the code under
# them change.
STRESS_RUNS ?= 10
stress: $(STAMP)
	@for i in $$(seq 1 $(STRESS_RUNS)); do \
	  echo "stress run $$i/$(STRESS_RUNS)"; \
	  $(BIN)/pytest -q -m stress || exit 1; \
	done; echo "stress: $(STRESS_RUNS) runs, 0 failures"

bench: $(STAMP)
	$(BIN)/python bench/preview.py
	$(BIN)/python bench/send.py
	$(BIN)/python bench/signing.py

clean:
	rm -rf $(VENV)
