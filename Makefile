# residue.purge: every target installs what it needs itself (tools/bootstrap.sh).
SHELL := /bin/bash
.DEFAULT_GOAL := help
TOP := $(CURDIR)
VENV := $(TOP)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(TOP)/.build/collections
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH := false
export PYTHONPATH := $(TOP)/.build/collections
# outside the git checkout: inside it, ansible-test would list files through the parent repo (which ignores .build)
ATEST_ROOT ?= /tmp/residue-purge-atest$(TOP)/ansible_collections/residue/purge
# Tools keep their state in the checkout or /tmp, never in ~: ansible-playbook, ansible-lint and molecule use
# ANSIBLE_HOME; ansible-test keeps its venvs and the offline pip bootstrap under HOME, so it gets a HOME of its own.
export ANSIBLE_HOME := $(TOP)/.build/ansible-home
export ATEST_HOME ?= /tmp/residue-purge-atest$(TOP)/home
PYTEST := $(VENV)/bin/python -m pytest
# make test runs these in order (tools/stages.sh times each and prints the table at the end); each unit test
# runs once, in ansible-test units (make unit is the same tests, for a quick loop).
TEST_STAGES := sanity units lint integration molecule

.PHONY: help bootstrap demo test unit sanity units lint integration molecule bench atest-tree ee

help:
	@echo "make demo   - seed a disposable sandbox and run residue.purge on it"
	@echo "make test   - sanity, ansible-test units, ansible-lint, integration, lab (times each stage)"
	@echo "make bench  - run benchmarks and rewrite benchmarks/RESULTS.md"

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
	cd $(ATEST_ROOT) && HOME=$(ATEST_HOME) ansible-test sanity --venv --python 3.11 --color no $(SANITY_ARGS)

units: atest-tree
	cd $(ATEST_ROOT) && HOME=$(ATEST_HOME) ansible-test units -v --venv --python 3.11 --requirements --color no $(UNITS_ARGS)

lint: bootstrap
	ansible-lint --profile production --strict $(LINT_ARGS)

integration: bootstrap
	$(PYTEST) -v --durations=10 tests/integration

molecule: bootstrap
	tools/molecule-all.sh

test: bootstrap
	@tools/stages.sh $(TEST_STAGES)

bench: bootstrap
	$(VENV)/bin/python benchmarks/run.py

demo: bootstrap
	tools/demo.sh

# execution environment build contexts (ansible-builder create; no container engine): .build/ee/{collection,awx}
ee: bootstrap
	tools/ee.sh
