# Two commands for a fresh clone (each installs what it needs into .venv):
#   make demo   train VASE on moving Fashion -> MNIST -> moving MNIST (cpu preset) and write the report
#   make test   run the test suite
PY := .venv/bin/python
export VASE_DATA_DIR ?= $(abspath ../shared/data)
DEMO_OUT ?= runs/demo

.PHONY: setup demo test test-all clean

setup:
	bash scripts/setup_env.sh "sb3,dev,world,atari"
	bash scripts/install_gl.sh || true

demo: setup
	$(PY) -m vase_rl.cli train --sequence moving-fashion,mnist,moving-mnist --preset cpu \
		--out $(DEMO_OUT) --report --reference-entangled $(DEMO_ARGS)

test: setup
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf runs .pytest_cache
