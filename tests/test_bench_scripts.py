"""The benchmark scripts' pure parts (bench/: argument parsing, tables, the GPU check's datasheet lookup and
MFU arithmetic, the fit benchmark's step-time arithmetic); nothing here is timed. The GPU check's exit
without CUDA runs it in a subprocess with no GPU visible."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_script_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def profile_step():
    return load("profile_step")


@pytest.fixture(scope="module")
def bench_gpu():
    return load("bench_gpu")


@pytest.fixture(scope="module")
def bench_fit():
    return load("bench_fit")


# ----- bench/profile_step.py ---------------------------------------------------------------------------------
def test_profile_arguments(profile_step):
    args = profile_step.parse_args(["--presets", "tiny112", "small224", "--precision", "32-true", "--steps", "2"])
    assert args.presets == ["tiny112", "small224"] and [profile_step.PRECISIONS[p] for p in args.precision] == ["fp32"]
    with pytest.raises(SystemExit):
        profile_step.parse_args(["--precision", "fp16"])
    with pytest.raises(SystemExit):
        profile_step.parse_args(["--steps", "0"])


def test_ops_are_classed_as_gemm_attention_or_other(profile_step):
    assert profile_step.op_class("aten::mm") == profile_step.op_class("aten::addmm") == "gemm"
    assert profile_step.op_class("aten::_scaled_dot_product_flash_attention_for_cpu_backward") == "attention"
    assert profile_step.op_class("aten::native_layer_norm") == profile_step.op_class("aten::copy_") == "other"


def test_profile_summary_per_step_shares_and_markdown(profile_step):
    # 2 profiled steps of 1 s: mm 0.8 s in all, copy_ 0.6 s, attention 0.2 s, gelu 0.2 s -> 1.8 s in ops
    ops = [("aten::copy_", 20, 0.6), ("aten::mm", 10, 0.8), ("aten::gelu", 4, 0.2),
           ("aten::_scaled_dot_product_flash_attention_for_cpu", 2, 0.2)]
    summary = profile_step.summarise(ops, steps=2, step_s=1.0, top=2)
    assert [r["op"] for r in summary["rows"]] == ["aten::mm", "aten::copy_"]
    mm = summary["rows"][0]
    assert (mm["calls"], mm["self_ms"], mm["share"], mm["class"]) == (5, pytest.approx(400.0), pytest.approx(0.4), "gemm")
    assert summary["shares"] == pytest.approx({"gemm": 0.4, "attention": 0.1, "other": 0.4, "outside ops": 0.1})
    assert summary["ops_per_step"] == 18
    text = profile_step.markdown("tiny112, 32-true", summary)
    assert "| `aten::mm` | 5 | 400.0 | 40.0 | gemm |" in text
    assert "gemm 40.0, attention 10.0, other 40.0, outside ops 10.0" in text


# ----- bench/bench_gpu.py -------------------------------------------------------------------------------------
def test_gpu_check_arguments(bench_gpu):
    args = bench_gpu.parse_args(["--variants", "compile", "--batch", "4", "--no-ddp"])
    assert (args.variants, args.batch, args.no_ddp) == (["compile"], 4, True)
    with pytest.raises(SystemExit):
        bench_gpu.parse_args(["--variants", "fast"])


def test_the_study_batch_per_gpu_is_the_regimes(bench_gpu):
    import yaml

    experiments = BENCH.parent / "experiments" / "regimes"
    for regime in ("ucf101", "mixed"):
        data = yaml.safe_load((experiments / f"{regime}.yaml").read_text())["data"]["init_args"]
        assert data["batch_size"] == bench_gpu.STUDY_BATCH_PER_GPU


@pytest.mark.parametrize("name, label, tflops", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM", 989.0),
    ("NVIDIA H100 PCIe", "H100 PCIe", 756.0),
    ("NVIDIA H100 NVL", "H100 NVL", 835.0),
    ("NVIDIA H200", "H200 SXM", 989.0),
    ("NVIDIA H200 NVL", "H200 NVL", 835.0),
    ("NVIDIA GH200 480GB", "GH200", 989.0),
    ("NVIDIA A100-SXM4-80GB", "A100", 312.0),
    ("NVIDIA A100 80GB PCIe", "A100", 312.0),
    ("NVIDIA A10", "A10", 125.0),
    ("NVIDIA L4", "L4", 121.0),
    ("NVIDIA L40S", "L40S", 362.0),
    ("NVIDIA B200", "B200", 2250.0),
])
def test_datasheet_peak_of_known_devices(bench_gpu, name, label, tflops):
    assert bench_gpu.datasheet_peak(name) == (label, tflops)


@pytest.mark.parametrize("name", ["NVIDIA A10G", "Tesla V100-SXM2-16GB", "NVIDIA GeForce GTX 1080", "NVIDIA H100",
                                  "NVIDIA GB200", ""])
def test_datasheet_peak_of_unknown_devices_is_none(bench_gpu, name):
    assert bench_gpu.datasheet_peak(name) is None


def test_mfu_arithmetic(bench_gpu):
    # 4.945e14 FLOPs in 1 s on a 989 TFLOP/s part: half its peak; twice the time, a quarter
    assert bench_gpu.mfu(4.945e14, 1.0, 989.0) == pytest.approx(0.5)
    assert bench_gpu.mfu(4.945e14, 2.0, 989.0) == pytest.approx(0.25)
    assert bench_gpu.mfu(3.12e12, 0.1, 312.0) == pytest.approx(0.1)


@pytest.mark.slow  # a fresh interpreter importing torch and jepa_lit: seconds
def test_gpu_check_without_cuda_exits_2_with_a_message():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(BENCH.parent)}
    done = subprocess.run([sys.executable, str(BENCH / "bench_gpu.py"), "--no-ddp"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "no CUDA device is available" in done.stderr and "make bench" in done.stderr


# ----- bench/bench_fit.py -------------------------------------------------------------------------------------
def test_fit_benchmark_arguments(bench_fit):
    assert bench_fit.parse_args(["--regimes", "mixed", "--steps", "4"]).steps == 4
    with pytest.raises(SystemExit):
        bench_fit.parse_args(["--regimes", "kinetics"])


def test_fit_step_times_from_the_batch_hooks(bench_fit):
    # batch starts every 1.5 s; the first is a warm-up; compute 1.0 s, then 0.5 s waiting for the loader
    starts = [0.0, 3.0, 4.5, 6.0, 7.5]
    ends = [2.0, 4.0, 5.5, 7.0, 8.5]
    times = bench_fit.step_times(starts, ends, warmup=1, batch=2)
    assert times["timed_steps"] == 3
    assert times["step_s"] == times["step_s_mean"] == pytest.approx(1.5)
    assert times["compute_s"] == pytest.approx(1.0) and times["data_wait_s"] == pytest.approx(0.5)
    assert times["data_wait_share"] == pytest.approx(1 / 3) and times["clips_per_s"] == pytest.approx(2 / 1.5)
    with pytest.raises(ValueError, match="warmup"):
        bench_fit.step_times(starts[:2], ends[:2], warmup=1, batch=2)


def test_fit_arguments_run_the_regime_baseline_with_the_tiny112_model(bench_fit, tmp_path):
    from jepa_lit.data.fixtures import make_ucf101

    make_ucf101(tmp_path / "ucf101", broken=False)
    args = bench_fit.parse_args(["--warmup", "2", "--steps", "4"])
    ucf = bench_fit.fit_arguments("ucf101", tmp_path, tmp_path / "runs", args)
    assert ucf[:3] == ["fit", "--config", str(BENCH.parent / "experiments" / "ucf101_baseline.yaml")]
    assert "--model.init_args.encoder.init_args.size=tiny" in ucf and "--data.init_args.crop_size=112" in ucf
    assert "--trainer.max_steps=7" in ucf and not any("num_workers" in a for a in ucf)  # the config's workers
    assert "--model.init_args.context_loss_start=0.0" in ucf  # the context loss at every step, as the bench step
    listed = (tmp_path / "ucf101" / "train_repeated.txt").read_text().splitlines()
    assert len(listed) == 6 * 4  # 6 training videos; 2 x (2 + 4 + 4) = 20 clips -> 4 repeats
    assert all((tmp_path / "ucf101" / line.rsplit(" ", 1)[0]).is_file() for line in listed)
    mixed = bench_fit.fit_arguments("mixed", tmp_path, tmp_path / "runs", args)
    assert f"--data.init_args.root={tmp_path}" in mixed and "--data.init_args.samples_per_epoch=20" in mixed


def test_gpu_check_table_shows_failed_variants_and_a_skipped_ddp(bench_gpu, capsys):
    ok = {"variant": "eager", "first_step_s": 2.0, "median_s": 0.5, "min_s": 0.49, "max_s": 0.52,
          "tflops_achieved": 400.0, "mfu_measured_peak": 0.5, "mfu_datasheet": 0.4, "peak_memory_gib": 7.25,
          "clips_per_s": 16.0}
    doc = {"device": "NVIDIA H100 80GB HBM3", "device_count": 1, "torch": "2.x", "cuda": "12.x", "batch": 8,
           "timed_steps": 10, "warmup_steps": 3, "mask_step": 0, "gflop": 200000.0, "gemm_size": 8192,
           "peaks": {"measured_tflops": 800.0, "datasheet_label": "H100 SXM", "datasheet_tflops": 989.0},
           "variants": [ok, {"variant": "compile", "error": "RuntimeError: out of memory\nmore"}],
           "ddp": "skipped: 1 GPU (it needs 2)"}
    bench_gpu.print_table(doc)
    out = capsys.readouterr().out
    assert "H100 SXM 989 TFLOP/s" in out and "bf16 peak measured 800 TFLOP/s" in out
    assert "eager" in out and "0.500" in out and "7.25" in out
    assert "compile       failed: RuntimeError: out of memory" in out and "more" not in out
    assert "DDP: skipped: 1 GPU (it needs 2)" in out
