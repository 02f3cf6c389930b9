# mimamori — the two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench fp check install sysdeps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Servers the tests start themselves (PostgreSQL, nats-server, rsyslog); installed when missing and we are root.
sysdeps:
	@bash scripts/sysdeps.sh

demo: $(STAMP)
	$(BIN)/mimamori demo

test: $(STAMP) sysdeps
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP) sysdeps
	$(BIN)/python bench/run.py
	$(BIN)/python bench/beacon.py
	$(BIN)/python bench/false_positives.py
	$(BIN)/python bench/collect.py
	$(BIN)/python bench/internet.py
	$(BIN)/python bench/sigma_scan.py

# Alerts each detector raises on the real data in ../shared/data (false positives apart).
fp: $(STAMP)
	$(BIN)/python bench/false_positives.py

check: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .mimamori build *.egg-info
