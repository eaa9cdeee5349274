# jepa-lit: `make demo` pretrains on the embedded synthetic data; `make test` runs the test suite.
PYTHON ?= python3
TORCH_VERSION ?= 2.13.0
VENV ?= .venv
BIN := $(VENV)/bin
# albumentations checks for updates over the network at import unless told not to.
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: install demo test bench clean

install: $(VENV)/.installed

# torch first, pinned: an unpinned torch resolves to a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: install
	$(BIN)/jepa-lit fit --config experiments/smoke.yaml

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/bench_step.py

clean:
	rm -rf runs lightning_logs .pytest_cache
