# mmvit_ext — the two commands of the README:
#   make demo   set up .venv if needed, train the demo model with tools/train.py, evaluate it with tools/test.py
#   make test   set up .venv if needed, run the whole test suite
PY          := .venv/bin/python
DEMO_DATA   := data/demo
DEMO_CONFIG ?= configs/p2t/fpn_p2t-t_1xb4-300iter_demo-ade20k-128x128.py
DEMO_WORK   ?= work_dirs/demo
PYTEST_ARGS ?=
# OpenMP threads that spin while waiting stall badly when the 2 cores are shared (tests start subprocesses);
# passive waiting costs little when the machine is quiet. Override with OMP_WAIT_POLICY=ACTIVE.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup demo test clean-demo

setup:
	@bash tools/setup_env.sh

$(DEMO_DATA)/.done: tools/misc/make_demo_data.py mmvit_ext/datasets/demo_data.py | setup
	$(PY) tools/misc/make_demo_data.py $(DEMO_DATA)
	@touch $@

demo: setup $(DEMO_DATA)/.done
	$(PY) tools/train.py $(DEMO_CONFIG) --work-dir $(DEMO_WORK)
	$(PY) tools/test.py $(DEMO_CONFIG) $$(cat $(DEMO_WORK)/last_checkpoint) --work-dir $(DEMO_WORK)

test: setup
	$(PY) -m pytest tests $(PYTEST_ARGS)

clean-demo:
	rm -rf $(DEMO_WORK) $(DEMO_DATA)
