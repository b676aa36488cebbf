# The two first commands of the README: `make run` and `make test`. Everything installs from pinned locks.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
CHECKOV_VENV := .venv-checkov
FINSIGHT := $(VENV)/bin/finsight
ENV ?= local
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: quality-e2e setup run test lint bench up down status clean synth cost chaos mutation mutation-all mutation-report

setup: $(VENV)/.installed $(CHECKOV_VENV)/.installed

# --compile-bytecode: Python never rewrites .pyc where PYTHONDONTWRITEBYTECODE is set (CI sets it), so without it
# every process (each connector, the fakesnow server, every CLI call) compiles its imports anew: ~4 s of CPU each.
$(VENV)/.installed: requirements.lock requirements-uv.lock pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check --require-hashes -r requirements-uv.lock
	$(UV) pip install -q --compile-bytecode --python $(PY) --require-hashes -r requirements.lock
	$(UV) pip install -q --python $(PY) --no-deps -e .
	$(PY) -m compileall -q finsight connectors snowpark tasks tests cdktf/finsight_infra
	touch $@

# checkov pins packaging/boto3 versions that clash with the platform, so it lives in its own venv
$(CHECKOV_VENV)/.installed: requirements-checkov.lock requirements-uv.lock
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --disable-pip-version-check --require-hashes -r requirements-uv.lock
	$(CHECKOV_VENV)/bin/uv pip install -q --compile-bytecode --python $(CHECKOV_VENV)/bin/python --require-hashes -r requirements-checkov.lock
	touch $@

run: setup
	$(FINSIGHT) run --env $(ENV)

# The tests start (and afterwards stop) the local stack themselves; see tests/conftest.py. The stack-free tests
# (IaC synth, checkov, docs, ...) run in a second pytest process beside the stack tests: tests/suite.py.
test: setup
	$(PY) -m tests.suite $(PYTEST_ARGS)

# Every fault-injection scenario (tests/chaos/; `make test` runs only the fast ones), then docs/reliability.md.
chaos: setup
	FINSIGHT_CHAOS=all FINSIGHT_CHAOS_REPORT=1 $(VENV)/bin/pytest tests/chaos -m chaos $(PYTEST_ARGS)

# the end-to-end data-quality anomaly scenario alone (six injected anomalies, ~2 min); `make test` runs it too
quality-e2e: setup
	$(VENV)/bin/pytest tests/quality/test_checks_in_the_dag.py $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(FINSIGHT) sql lint --env $(ENV)
	$(FINSIGHT) sql check --env $(ENV)

bench: setup
	$(PY) -m tests.bench.run

up: setup
	$(FINSIGHT) local up
down:
	$(FINSIGHT) local down
status:
	$(FINSIGHT) local status

synth: setup
	$(FINSIGHT) infra synth

cost: setup
	$(FINSIGHT) cost --env $(ENV)

# Mutation testing (docs/testing.md): mutmut over the modules that hold the promises, with the fast tests only
# (pure functions, moto, fakesnow). The tests reuse one running stack: mutants/ sees it through .local.
# `make mutation` is the CI budget: a fixed 1-in-5 sample (mutant numbers ending in 0 or 5) of every promise module
# (MERGE, landing/PAN, windows, watermark, DAG, pipe player). `make mutation MUTATION_SAMPLE=` runs all their
# mutants; `make mutation-all` runs everything in [tool.mutmut] only_mutate, the cost model included.
# MUTATION_ARGS narrows it further, e.g. MUTATION_ARGS='"snowpark.merge.*"'.
MUTATION_MODULES := snowpark.merge connectors.pci connectors.landing.writer connectors.landing.state \
	connectors.postgres.source connectors.postgres.bulk tasks.dag finsight.local.snowpipe
MUTATION_SAMPLE ?= [05]
MUTATION_ARGS ?= $(foreach m,$(MUTATION_MODULES),"$(m).*__mutmut_*$(MUTATION_SAMPLE)")
mutation: setup
	$(FINSIGHT) local up
	$(FINSIGHT) migrate --env local  # a stack left by an older checkout lacks the newest OPS tables
	mkdir -p mutants && ln -sfn ../.local mutants/.local
	$(VENV)/bin/mutmut run --max-children 2 $(MUTATION_ARGS) > mutants/run.log 2>&1 || (tail -50 mutants/run.log; exit 1)
	$(PY) -m tests.mutation.report

# everything in [tool.mutmut] only_mutate, the cost model included; results cached in mutants/ (a rerun only
# retests functions whose code changed)
mutation-all: setup
	$(FINSIGHT) local up
	$(FINSIGHT) migrate --env local
	mkdir -p mutants && ln -sfn ../.local mutants/.local
	$(VENV)/bin/mutmut run --max-children 2 > mutants/run.log 2>&1 || (tail -50 mutants/run.log; exit 1)
	$(PY) -m tests.mutation.report

mutation-report:
	$(PY) -m tests.mutation.report --survivors

# Every lock carries sha256 hashes and every install passes --require-hashes: a re-published or swapped
# artifact fails the install instead of running in a deploy job (issue 21 item 9).
lock:
	$(UV) pip compile pyproject.toml --extra dev -o requirements.lock --python-version 3.11 --no-header --generate-hashes
	echo "checkov==3.3.30" | $(UV) pip compile - -o requirements-checkov.lock --python-version 3.11 --no-header --generate-hashes
	echo "uv==0.13.9" | $(UV) pip compile - -o requirements-uv.lock --python-version 3.11 --no-header --generate-hashes

clean: down
	rm -rf .local $(VENV) $(CHECKOV_VENV) cdktf/cdktf.out
