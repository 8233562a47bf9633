# Single entry point. `make run`: set up and run the pipeline on the bundled synthetic cohort.
# `make test`: set up and run the test suite (what CI runs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
STAMP := $(VENV)/.installed

.PHONY: setup run run-tiny test test-all lint format lock report clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: setup
	$(BIN)/snakemake --profile profiles/default --cores $(CORES)

run-tiny: setup
	$(BIN)/snakemake --profile profiles/default --cores $(CORES) --configfile config/test/config.yaml

test: setup
	$(BIN)/python -m pytest -n 2

test-all: setup
	$(BIN)/python -m pytest -n 2 -m ""

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --cores 1

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/snakefmt Snakefile workflow/rules

lock: setup
	$(BIN)/python -m pip freeze --exclude-editable > requirements.lock.new
	mv requirements.lock.new requirements.lock

report: setup
	$(BIN)/snakemake --profile profiles/default --cores 1 --report results/report.html

clean:
	rm -rf results logs .snakemake
