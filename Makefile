# jepa-lit: `make demo` pretrains on the embedded synthetic data; `make test` runs the test suite.
PYTHON ?= python3
TORCH_VERSION ?= 2.13.0
VENV ?= .venv
BIN := $(VENV)/bin
# albumentations checks for updates over the network at import unless told not to.
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: install demo test bench bench-data clean

install: $(VENV)/.installed

# torch first, pinned: an unpinned torch resolves to a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Pretrain the smoke model, then probe it on synthetic motion next to the same probe on a random-init encoder.
demo: install
	$(BIN)/jepa-lit fit --config experiments/smoke.yaml
	@run=$$(ls -td runs/smoke/version_* | head -1); \
	for encoder in checkpoint random_init; do \
	  $(BIN)/jepa-lit test --probe synthetic --config experiments/probes/synthetic_demo.yaml \
	    --ckpt_path $$run/checkpoints/last.ckpt --encoder $$encoder \
	    --output $$run/probes/demo_synthetic_$$encoder.json || exit 1; \
	done; \
	$(BIN)/python -m jepa_lit.eval.results $$run/probes/demo_synthetic_checkpoint.json \
	  $$run/probes/demo_synthetic_random_init.json

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/bench_step.py
	$(BIN)/python bench/bench_data.py

bench-data: install
	$(BIN)/python bench/bench_data.py

clean:
	rm -rf runs lightning_logs .pytest_cache
