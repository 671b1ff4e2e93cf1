# All set-up is here: `make bench` and `make test` create .venv on a fresh machine first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup data bench speed test test-fast benchmarks clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0   # the CPU build; an unpinned torch pulls GBs of CUDA packages
	$(BIN)/pip install -q -e '.[all]'
	touch $(STAMP)

# Debian's Fashion-MNIST package (the benchmark's data), where apt is available and we are root.
data:
	@if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then echo "Fashion-MNIST: present"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) || \
	  echo "warning: could not install dataset-fashion-mnist"; \
	else echo "warning: install the Debian package dataset-fashion-mnist (or set FASHION_MNIST_DIR)"; fi

# The main job: the evaluator speed comparison (becomes the benchmark matrix when it lands).
bench: setup data
	$(BIN)/lrbench speed

test: setup data
	$(BIN)/python -m pytest -q

benchmarks: setup
	$(BIN)/python -m pytest --benchmark-only tests/benchmarks

clean:
	rm -rf $(VENV) .hypothesis .benchmarks
