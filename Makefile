# jepa-lit: `make demo` pretrains on the embedded synthetic data; `make test` runs the test suite (CI),
# `make test-fast` the tests not marked slow (the edit-test loop).
PYTHON ?= python3
TORCH_VERSION ?= 2.13.0
VENV ?= .venv
BIN := $(VENV)/bin
# albumentations checks for updates over the network at import unless told not to.
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: install demo test test-fast bench bench-data profile bench-gpu bench-fit gpu-wheels gpu-check sweep report clean

install: $(VENV)/.installed

# torch first, pinned: an unpinned torch resolves to a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Pretrain the demo model (experiments/demo.yaml: online probes every few epochs, step 0 = random init), probe it
# once on the benchmark's held-out test clips next to the same probe on a random-init encoder, then draw the
# figure (RUN/demo.png) and say in one sentence what the run showed (docs/demo.md).
# DEMO_ARGS / DEMO_PROBE_ARGS: more arguments of the fit / the two test probes, e.g. --seed_everything 1.
DEMO_ARGS ?=
DEMO_PROBE_ARGS ?=
demo: install
	$(BIN)/jepa-lit fit --config experiments/demo.yaml $(DEMO_ARGS)
	@run=$$(ls -td runs/demo/version_* | head -1); \
	for encoder in checkpoint random_init; do \
	  $(BIN)/jepa-lit test --probe synthetic --config experiments/probes/demo.yaml $(DEMO_PROBE_ARGS) \
	    --ckpt_path $$run/checkpoints/last.ckpt --encoder $$encoder \
	    --output $$run/probes/demo_synthetic_$$encoder.json || exit 1; \
	done; \
	$(BIN)/python -m jepa_lit.demo $$run $$run/probes/demo_synthetic_checkpoint.json \
	  $$run/probes/demo_synthetic_random_init.json

test: install
	$(BIN)/python -m pytest -q

# Leaves out the tests marked @pytest.mark.slow (CLI fits, DDP, sweep runs, anything over ~3 s): under a minute.
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

# The study (experiments/sweep.yaml): every variant x regime x seed, each a pretraining + its probes; resumable.
# SCALE=smoke: a reduced grid on synthetic data with tiny models, minutes on a CPU (plumbing; not results).
# SCALE=laptop: the study's objectives at laptop scale on synthetic video (docs/results.md). SWEEP_ARGS: e.g. --jobs 2,
# --launcher slurm, --dry-run, --only 'mixed/.*/seed_0'.
SCALE ?= full
SWEEP_ARGS ?=
REPORT_ARGS ?=
sweep: install
	$(BIN)/python -m jepa_lit.study sweep experiments/sweep.yaml --scale $(SCALE) $(SWEEP_ARGS)

# Tables (Markdown + CSV), plots and TensorBoard HParams of the sweep's runs: runs/sweep/$(SCALE)/report/.
# REPORT_ARGS: e.g. --allow-mismatch.
report: install
	$(BIN)/python -m jepa_lit.study report runs/sweep/$(SCALE) $(REPORT_ARGS)

# The data benchmark (bench/results/data.json: clips/s per loader worker for PyAV and torchcodec, and the workers
# per GPU at a step time), then the step benchmark, whose table shows the data pipeline's clips/s next to the step
# figures (bench/results/step.json). BENCH_ARGS: e.g. --presets tiny112 --steps 3, or --device cuda --precision
# bf16-mixed; BENCH_DATA_ARGS: e.g. --quick, or --step-ms 20 --batch 8 (the workers a GPU needs at 20 ms per step).
BENCH_ARGS ?=
BENCH_DATA_ARGS ?=
bench: install
	$(BIN)/python bench/bench_data.py $(BENCH_DATA_ARGS)
	$(BIN)/python bench/bench_step.py $(BENCH_ARGS)

bench-data: install
	$(BIN)/python bench/bench_data.py $(BENCH_DATA_ARGS)

# torch.profiler over a few bench steps: the top ops by self CPU time per preset and precision, as Markdown
# (bench/results/profile.md). PROFILE_ARGS: e.g. --presets tiny112 small224 --precision 32-true --steps 2.
PROFILE_ARGS ?=
profile: install
	$(BIN)/python bench/profile_step.py $(PROFILE_ARGS)

# The GPU check (CUDA only; exits with code 2 without it): base224 bf16-mixed at the study's batch per GPU,
# with / without torch.compile and activation checkpointing, MFU, peak memory, a 2-process DDP step with 2 GPUs
# (bench/results/gpu.json). BENCH_GPU_ARGS: e.g. --variants eager compile --no-ddp.
BENCH_GPU_ARGS ?=
bench-gpu: install
	$(BIN)/python bench/bench_gpu.py $(BENCH_GPU_ARGS)

# On a GPU machine whose python3 has a CUDA torch (any version) and Lightning, without network: installs the few
# packages its image lacks from gpu-wheels/ (into .gpu-site/, beside the system's) and jepa-lit (editable, no
# dependencies; torch untouched), then the CUDA tests, a 20-step study fit (ViT-B, 8 x 16 x 224, bf16-mixed,
# FWM-HW-LD, fixture data) with the simple profiler and the syncs per step, and bench_gpu.py; at most 8 minutes,
# one JSON (bench/results/gpu_check.json). Without a GPU the script exits 3 (make: "Error 3"). No .venv: it runs
# under the machine's python3.
# GPU_CHECK_ARGS: e.g. --skip-install, --budget-s 600, --dry-run.
GPU_PYTHON ?= python3
GPU_CHECK_ARGS ?=
gpu-check:
	$(GPU_PYTHON) bench/gpu_check.py $(GPU_CHECK_ARGS)

# Before gpu-check, on a machine that reaches the package index: gpu-wheels/, the binary wheels (Python 3.12,
# manylinux x86_64, no dependency resolution) of what the GPU image lacks, at most 64 MiB. GPU_WHEELS_ARGS: e.g.
# --python-version 3.11, --present pip-list.txt (the GPU machine's `pip list --format=freeze`), --print.
GPU_WHEELS_ARGS ?=
gpu-wheels: install
	$(BIN)/python bench/gpu_wheels.py $(GPU_WHEELS_ARGS)

# `jepa-lit fit` on the fixture datasets (data loading included, the configs' workers) next to the bench
# step's time for the same model and batch (bench/results/fit.json), about 2 minutes on a CPU. BENCH_FIT_ARGS:
# e.g. --regimes mixed --steps 6.
BENCH_FIT_ARGS ?=
bench-fit: install
	$(BIN)/python bench/bench_fit.py $(BENCH_FIT_ARGS)

clean:
	rm -rf runs lightning_logs .pytest_cache
