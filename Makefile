# All set-up is here: `make bench` and `make test` create .venv on a fresh machine first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup data browser bench speed test test-fast benchmarks clean docs track

setup: $(STAMP)

# The extras go in with torch pinned (timm's torchvision would upgrade it to a CUDA build of GBs). timm pulls
# torchvision, whose Linux wheels on PyPI are built for CUDA torch and fail to import beside the CPU build
# ("operator torchvision::nms does not exist"); the timm oracle imports timm.scheduler alone, which needs no
# torchvision (reference/timm_oracle.py), so that broken package is removed again.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0   # the CPU build; an unpinned torch pulls GBs of CUDA packages
	echo 'torch==2.13.0' > $(VENV)/torch-pin.txt
	$(BIN)/pip install -q -c $(VENV)/torch-pin.txt -e '.[all]'
	$(BIN)/pip uninstall -q -y torchvision
	touch $(STAMP)

# Debian's Fashion-MNIST package (the benchmark's data), where apt is available and we are root.
data:
	@if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then echo "Fashion-MNIST: present"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) || \
	  echo "warning: could not install dataset-fashion-mnist"; \
	else echo "warning: install the Debian package dataset-fashion-mnist (or set FASHION_MNIST_DIR)"; fi

# Debian's chromium: the report's browser test opens report.html in it (skipped, with a reason, without it).
browser:
	@if command -v chromium >/dev/null; then echo "chromium: present"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) || \
	  echo "warning: could not install chromium"; \
	else echo "warning: install the Debian package chromium (the report's browser test)"; fi

# The main job: the quick matrix (72 models, 3 epochs) and its report, on the CPU in minutes.
bench: setup data
	$(BIN)/lrbench run --matrix quick

speed: setup
	$(BIN)/lrbench speed
	$(BIN)/lrbench train-speed

test: setup data browser
	$(BIN)/python -m pytest -q

benchmarks: setup
	$(BIN)/python -m pytest --benchmark-only tests/benchmarks

# asv history (docs/TRACKING.md): the tracked commits of main not yet measured on this machine, under a name
# that says its CPU (ci-2core-intel-avx512, ci-2core-amd-avx2); COMMITS="sha ..." measures those instead.
# Run it on an idle machine (timings taken beside another job are inflated), then commit results/asv/
# (it ends by rewriting results/asv/<machine>/timeline.csv and timeline.png, the history at a glance).
track: setup
	$(BIN)/python -m bench.speed.asv_benchmarks.history --track $(if $(COMMITS),--commits $(COMMITS),)

# docs/CLI.md from the click commands (tests/test_docs.py fails while it is stale).
docs: setup
	$(BIN)/python -m bench.cli docs-cli -o docs/CLI.md

clean:
	rm -rf $(VENV) .hypothesis .benchmarks

# On a machine with a GPU (README, "GPU check"): needs only python3 with torch, numba, numba-cuda, pandas;
# the project need not be installed. Fashion-MNIST from GPU_CHECK_DATA (copy the four IDX files there);
# every number goes under $(OUT), else gpu-check-out/. Without a GPU the GPU steps report "skipped".
GPU_CHECK_PY ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PY))
GPU_CHECK_DATA ?= data/fashion-mnist
GPU_CHECK_OUT ?= $(if $(OUT),$(OUT),gpu-check-out)

.PHONY: gpu-check
gpu-check:
	PYTHONPATH=$(CURDIR) $(GPU_CHECK_PY) -m bench.speed.gpu_check --out $(GPU_CHECK_OUT) \
	  $(if $(wildcard $(GPU_CHECK_DATA)/*),--data-dir $(GPU_CHECK_DATA),)
