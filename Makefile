# mmvit_ext — the commands of the README (each sets up .venv first if needed):
#   make demo       train the demo model with tools/train.py, evaluate it with tools/test.py, print its mIoU
#                   next to a trivial baseline's (tools/misc/demo_report.py)
#   make test       run the whole test suite (what CI runs, after make lint)
#   make test-fast  the unit tests only: skips the `integration` tests (see tests/conftest.py)
#   make lint       check formatting (yapf, isort) and flake8 without changing files
#   make format     reformat in place with yapf and isort (settings in setup.cfg)
PY          := .venv/bin/python
DEMO_DATA   := data/demo
DEMO_CONFIG ?= configs/p2t/fpn_p2t-t_1xb4-300iter_demo-ade20k-128x128.py
DEMO_WORK   ?= work_dirs/demo
PYTEST_ARGS ?=
# What the formatter and linters cover; setup.cfg excludes .venv, build, work_dirs, data and mmvit_ext/.mim.
LINT_PATHS  ?= mmvit_ext tools tests configs setup.py
YAPF_EXCLUDE := --exclude 'mmvit_ext/.mim/*'
# OpenMP threads that spin while waiting stall badly when the 2 cores are shared (tests start subprocesses);
# passive waiting costs little when the machine is quiet. Override with OMP_WAIT_POLICY=ACTIVE.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup demo test test-fast lint format clean-demo

setup:
	@bash tools/setup_env.sh

$(DEMO_DATA)/.done: tools/misc/make_demo_data.py mmvit_ext/datasets/demo_data.py | setup
	rm -rf $(DEMO_DATA)
	$(PY) tools/misc/make_demo_data.py $(DEMO_DATA)
	@touch $@

demo: setup $(DEMO_DATA)/.done
	$(PY) tools/train.py $(DEMO_CONFIG) --work-dir $(DEMO_WORK)
	$(PY) tools/test.py $(DEMO_CONFIG) $$(cat $(DEMO_WORK)/last_checkpoint) --work-dir $(DEMO_WORK)
	$(PY) tools/misc/demo_report.py $(DEMO_CONFIG) $(DEMO_WORK)

test: setup
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest tests -m 'not integration' $(PYTEST_ARGS)

# All three checks run, then the target fails if any of them did.
lint: setup
	@status=0; \
	echo '[lint] yapf'; $(PY) -m yapf --diff --recursive $(YAPF_EXCLUDE) $(LINT_PATHS) || status=1; \
	echo '[lint] isort'; $(PY) -m isort --check-only --diff $(LINT_PATHS) || status=1; \
	echo '[lint] flake8'; $(PY) -m flake8 $(LINT_PATHS) || status=1; \
	if [ $$status -ne 0 ]; then echo '[lint] failed: `make format` fixes yapf/isort; flake8 findings need a manual fix'; fi; \
	exit $$status

format: setup
	$(PY) -m yapf -i --recursive $(YAPF_EXCLUDE) $(LINT_PATHS)
	$(PY) -m isort $(LINT_PATHS)

clean-demo:
	rm -rf $(DEMO_WORK) $(DEMO_DATA)
