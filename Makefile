# Two commands for a fresh clone (each installs what it needs into .venv):
#   make demo   train VASE on moving Fashion -> MNIST -> moving MNIST (cpu preset) and write the report
#               (a first run: DEMO_STEPS steps per dataset, A.6 probes every 4 steps, quick offline probes)
#   make test   run the test suite
# make demo-full: the cpu preset's full budget (2,500 steps per dataset), A.6 probes at every step, the
# entangled reference trained on the same sequence, and the full offline-probe protocol.
PY := .venv/bin/python
export VASE_DATA_DIR ?= $(abspath ../shared/data)
DEMO_OUT ?= runs/demo
DEMO_STEPS ?= 1500

.PHONY: setup demo demo-full test test-all clean

setup:
	bash scripts/setup_env.sh "sb3,dev,world,atari"
	bash scripts/install_gl.sh || true

demo: setup
	$(PY) -m vase_rl.cli train --sequence moving-fashion,mnist,moving-mnist --preset cpu \
		--steps-per-env $(DEMO_STEPS) --probe-train-every 4 --quality quick --out $(DEMO_OUT) --report $(DEMO_ARGS)

demo-full: setup
	$(PY) -m vase_rl.cli train --sequence moving-fashion,mnist,moving-mnist --preset cpu \
		--out runs/demo-full --report --reference-entangled $(DEMO_ARGS)

test: setup
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf runs .pytest_cache
