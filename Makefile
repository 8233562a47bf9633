# Single entry point. `make run`: set up and run the pipeline on the bundled synthetic cohort.
# `make test`: set up and run the test suite (what CI runs; .ci/run then runs `make test-slurm`:
# the workflow on a real single-node SLURM, where the machine allows it, docs/cluster.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
STAMP := $(VENV)/.installed

.PHONY: setup tools run run-tiny test test-slurm test-all lint format lock report clean

setup: $(STAMP)

# The C kernels (setup.py) are compiled by the editable install: rebuild when they change.
$(STAMP): requirements.lock pyproject.toml setup.py src/carmscope/bam/_native.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	# bytecode, as pip compiles it for an installed package: where PYTHONDONTWRITEBYTECODE is
	# set, every job would otherwise compile the carmscope modules it imports (docs/performance.md)
	$(BIN)/python -m compileall -q src/carmscope
	touch $(STAMP)

# Test-only tools whose dependencies clash with the pipeline's pins (MultiQC's boto3 needs
# python-dateutil < 3): their own environment, .venv-tools/, pinned in requirements-tools.lock.
# The tests that use them (MultiQC sections, snakedeploy) skip, saying why, without it.
TOOLS := .venv-tools
tools: $(TOOLS)/.installed

$(TOOLS)/.installed: requirements-tools.lock
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet -r requirements-tools.lock
	touch $@

# On a workstation a few jobs run at once, so the scheduler need look at only a few ready ones
# each time a job finishes: it checks the size of every input of every job it looks at
# (profiles/default's 200 is for a SLURM queue). docs/cluster.md, "Job selection".
LOCAL_RUN := --scheduler-subsample 16

run: setup
	$(BIN)/snakemake --profile profiles/default --cores $(CORES) $(LOCAL_RUN)

run-tiny: setup
	$(BIN)/snakemake --profile profiles/default --cores $(CORES) $(LOCAL_RUN) --configfile config/test/config.yaml

# --dist loadfile: each test file runs on one worker, so a file's workflow run (a module
# fixture) happens once, not once per worker.
test: setup
	$(BIN)/python -m pytest -n 2 --dist loadfile

# The tests marked `slurm`: start a local SLURM (root on Debian: installs Debian's packages),
# run the tiny cohort through profiles/slurm, stop the daemons; they skip (exit 0) and say why
# where the machine cannot host the cluster. Hard limit 30 min (each run has its own).
test-slurm: setup
	CARMSCOPE_TEST_SLURM=1 timeout -k 60 1800 $(BIN)/python -m pytest -p no:xdist -m slurm tests/cluster

test-all: setup
	$(BIN)/python -m pytest -n 2 --dist loadfile -m ""

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
