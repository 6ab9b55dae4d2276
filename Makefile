# Everything a fresh machine needs comes from this file and pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo preview test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Quick start: a real send of the sample campaign to the embedded simulator.
demo: $(STAMP)
	$(BIN)/campaigner send sample_data/whatsapp_template.toml --sandbox --yes

preview: $(STAMP)
	$(BIN)/campaigner preview sample_data/whatsapp_template.toml

lint: $(STAMP)
	$(BIN)/ruff check campaigner tests bench
	$(BIN)/ruff format --check campaigner tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/preview.py
	$(BIN)/python bench/send.py

clean:
	rm -rf $(VENV)
