# residue.purge: every target installs what it needs itself (tools/bootstrap.sh).
SHELL := /bin/bash
.DEFAULT_GOAL := help
TOP := $(CURDIR)
VENV := $(TOP)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(TOP)/.build/collections
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH := false
export PYTHONPATH := $(TOP)/.build/collections
# Every ansible-core minor release we claim: meta/runtime.yml's requires_ansible up to the newest on PyPI for
# Python 3.11. The newest is .venv's (requirements-dev.txt); each older one has a venv, .build/core-X.Y, from
# tests/ci/ansible-core-X.Y.txt. ansible-test runs with CORE's ansible-test on Python PY:
# `make sanity CORE=2.17`, `make units PY=3.8` (python3.8 comes from .build/python, see tools/bootstrap.sh).
CORES := $(shell python3 tools/cores.py list)
NEWEST_CORE := $(lastword $(CORES))
OLDER_CORES := $(filter-out $(NEWEST_CORE),$(CORES))
CORE ?= $(NEWEST_CORE)
PY ?= 3.11
ATEST_BIN = $(if $(filter $(NEWEST_CORE),$(CORE)),$(VENV)/bin,$(TOP)/.build/core-$(CORE)/bin)
# outside the git checkout: inside it, ansible-test would list files through the parent repo (which ignores .build);
# one tree per core, so that each keeps its own tests/output (delegation venvs, junit files)
ATEST_ROOT ?= /tmp/residue-purge-atest$(TOP)/core-$(CORE)/ansible_collections/residue/purge
ATEST = cd $(ATEST_ROOT) && HOME=$(ATEST_HOME) PATH=$(ATEST_BIN):$(TOP)/.build/python:$$PATH ansible-test
# Tools keep their state in the checkout or /tmp, never in ~: ansible-playbook, ansible-lint and molecule use
# ANSIBLE_HOME; ansible-test keeps its venvs and the offline pip bootstrap under HOME, so it gets a HOME of its own.
export ANSIBLE_HOME := $(TOP)/.build/ansible-home
export ATEST_HOME ?= /tmp/residue-purge-atest$(TOP)/home
PYTEST := $(VENV)/bin/python -m pytest
# make test runs these (tools/stages.sh times each and prints the table at the end); each unit test runs once, in
# ansible-test units (make unit is the same tests, for a quick loop).  `//` starts another lane that runs at the same
# time as the others: three lanes, so that what waits overlaps what computes.  The first lane is the CPU-bound
# ansible-test runs of every core (units use both cores when they get them).  Integration is one chain of
# ansible-playbook runs, one core's worth (about 12 minutes of CPU, 16 to 19 of wall time with its waits, as one
# stage): integration-host, the tests that act on this machine, has the second lane to itself.  Molecule (about 5
# minutes, mostly waiting on its lab hosts) opens the third, then integration-apart (lab hosts, controller files),
# then py38 (its own ansible-test trees and HOME, so it can run next to the first lane), lint and docs.  The labs of
# molecule and of integration share no name, port, key write or archive (tools/lab).  Each stage's log is
# .build/stages/STAGE.log, printed whole when the stage ends.  A list without `//` is one lane, in its order:
# make test TEST_STAGES="lint docs".
TEST_STAGES := sanity units $(foreach core,$(OLDER_CORES),sanity-$(core) units-$(core)) \
  // integration-host \
  // molecule integration-apart py38 lint docs

.PHONY: help bootstrap demo test unit sanity units py38 generate docs lint integration integration-host integration-apart molecule bench atest-tree ee

help:
	@echo "make demo   - seed a disposable sandbox and run residue.purge on it"
	@echo "make test   - sanity, ansible-test units, ansible-lint, integration, lab (times each stage)"
	@echo "make bench  - run benchmarks and rewrite benchmarks/RESULTS.md"
	@echo "make unit   - pytest tests/unit (the quick loop)"
	@echo "make lint   - ansible-lint, production profile"
	@echo "make sanity - ansible-test sanity (CORE=2.17 for an older ansible-core, PY=3.8 for another Python)"
	@echo "make units  - ansible-test units (CORE=, PY= as for sanity)"
	@echo "make py38   - module code on Python 3.8: compile/import sanity on every core, module_utils units"
	@echo "make integration - modules through real ansible-playbook"
	@echo "make integration-host - integration's tests that act on this machine (make test's second lane)"
	@echo "make integration-apart - the rest: lab hosts and controller files (make test's third lane, with molecule)"
	@echo "make molecule - the lab scenarios"
	@echo "make generate - rewrite generated files (role README tables, older cores' sanity ignores)"
	@echo "make docs   - antsibull-docs lint and generated files current"
	@echo "make ee     - execution environment build contexts"
	@echo "make bootstrap - .venv, .build/collections, older cores, Python 3.8 (every target runs it first)"
	@echo "make atest-tree - the copy ansible-test runs in (sanity and units make it themselves)"
	@echo "make help   - this list"

bootstrap:
	@tools/bootstrap.sh

# ansible-test insists on running from a real ansible_collections/<ns>/<name> directory.
atest-tree: bootstrap
	@mkdir -p $(ATEST_ROOT)/tests
	@find $(ATEST_ROOT) -mindepth 1 -maxdepth 1 ! -name tests -exec rm -rf {} +
	@find $(ATEST_ROOT)/tests -mindepth 1 -maxdepth 1 ! -name output -exec rm -rf {} +
	@git ls-files -co --exclude-standard -z | rsync -a --from0 --files-from=- ./ $(ATEST_ROOT)/

unit: bootstrap
	$(PYTEST) -q tests/unit

sanity: atest-tree
	$(ATEST) sanity --venv --python $(PY) --color no $(SANITY_ARGS)

# A skipped unit test is not a pass: tools/no_skipped_tests.py fails the run on any skip (or on no test at all).
units: atest-tree
	@rm -rf $(ATEST_ROOT)/tests/output/junit
	$(ATEST) units -v --venv --python $(PY) --requirements --color no $(UNITS_ARGS)
	@$(VENV)/bin/python tools/no_skipped_tests.py $(ATEST_ROOT)/tests/output/junit

# sanity-2.17, units-2.17, ...: the same on an older ansible-core (stages of make test)
sanity-%:
	@$(MAKE) --no-print-directory sanity CORE=$*
units-%:
	@$(MAKE) --no-print-directory units CORE=$*

# Files generated from others (role README variable tables from meta/argument_specs.yml, the older cores'
# sanity ignore files from the newest's): rewrite them all; make docs fails while one is out of date.
generate: bootstrap
	$(VENV)/bin/python tools/role_docs.py
	python3 tools/cores.py sync-ignores

# Docs as the Ansible docsite builds them (antsibull-docs), generated files current (role READMEs, CHANGELOG.rst),
# changelog fragments valid, the cores list complete.
docs: bootstrap
	python3 tools/cores.py check
	$(VENV)/bin/python tools/role_docs.py --check
	antsibull-changelog lint
	@t=$$(mktemp -d) && cp -r galaxy.yml changelogs CHANGELOG.rst $$t/ && (cd $$t && antsibull-changelog generate) \
	  && diff -u CHANGELOG.rst $$t/CHANGELOG.rst; rc=$$?; rm -rf $$t; \
	  [ $$rc = 0 ] || echo "CHANGELOG.rst is not what antsibull-changelog generates from changelogs/changelog.yaml"; exit $$rc
	antsibull-docs lint-collection-docs --plugin-docs --validate-collection-refs all \
	  --disallow-unknown-collection-refs $(TOP)/.build/collections/ansible_collections/residue/purge

# Module code on the managed host's oldest Python: sanity's compile and import tests on every core,
# the module_utils unit tests on the newest.
# The module_utils tests whose oracle is huggingface_hub 2.x's shared store (tests/unit/support/hfshared.py) run on
# the newest Python only: huggingface_hub 2.x needs Python >= 3.9, and 3.8 gets 0.36 (tests/unit/requirements.txt).
# py38 runs ansible-test in trees and a HOME of its own (PY38_ATEST): make test runs it at the same time as the
# other cores' sanity and units, which must not see their tree re-copied or their environments half written.
PY38_UNITS = $(shell grep -L hfshared tests/unit/plugins/module_utils/test_*.py)
PY38_ATEST = /tmp/residue-purge-atest$(TOP)/py38
py38: bootstrap
	@test -x $(TOP)/.build/python/python3.8 || { echo "make py38: no Python 3.8 here (tools/bootstrap.sh links" \
	  "pyenv's 3.8.x or a python3.8 on PATH): module code cannot be tested at its declared floor" >&2; exit 1; }
	@set -e; for core in $(CORES); do \
	  $(MAKE) --no-print-directory sanity CORE=$$core PY=3.8 SANITY_ARGS="--test compile --test import" \
	    ATEST_HOME=$(PY38_ATEST)/home ATEST_ROOT=$(PY38_ATEST)/core-$$core/ansible_collections/residue/purge; done
	@$(MAKE) --no-print-directory units PY=3.8 UNITS_ARGS="$(PY38_UNITS)" ATEST_HOME=$(PY38_ATEST)/home \
	  ATEST_ROOT=$(PY38_ATEST)/core-$(NEWEST_CORE)/ansible_collections/residue/purge

lint: bootstrap
	ansible-lint --profile production --strict $(LINT_ARGS)

integration: bootstrap
	$(PYTEST) -v --durations=30 tests/integration

# make test runs integration as two stages in two lanes: the files whose tests act only inside their own lab hosts
# (network, PID and mount namespaces, overlay root) or on the controller's files (docs, builds, make itself) run
# next to molecule's labs; the rest, which acts on this machine's processes, users and files, runs on its own.
INTEGRATION_APART := $(addprefix tests/integration/,test_awx_runner.py test_trust_lab.py test_filter_docs.py \
  test_awx_controller.py test_execution_environment.py test_role_docs.py test_stages.py test_artifacts.py)
integration-host: bootstrap
	$(PYTEST) -v --durations=30 tests/integration $(addprefix --ignore=,$(INTEGRATION_APART))
integration-apart: bootstrap
	$(PYTEST) -v --durations=20 $(INTEGRATION_APART)

molecule: bootstrap
	tools/molecule-all.sh

# bootstrap is timed too (on a fresh machine it is a stage of its own: the venvs, the downloads), alone, before the
# lanes start
test:
	@tools/stages.sh bootstrap -- $(TEST_STAGES)

bench: bootstrap
	$(VENV)/bin/python benchmarks/run.py

demo: bootstrap
	tools/demo.sh

# execution environment build contexts (ansible-builder create; no container engine): .build/ee/{collection,awx}
ee: bootstrap
	tools/ee.sh
