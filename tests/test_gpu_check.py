"""`make gpu-check` (bench/gpu_check.py) and `make gpu-wheels` (bench/gpu_wheels.py) on a machine without a GPU:
the exit and JSON without one, the install plan, the wheel list, the parts' bookkeeping with the parts stubbed,
the sync counter's arithmetic, and the fit part's arguments through the real CLI (on the CPU, a tiny model)."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
import gpu_check  # noqa: E402
import gpu_wheels  # noqa: E402
import sync_counter  # noqa: E402


def no_subprocess(*args, **kwargs):
    raise AssertionError(f"nothing may run without a GPU: {args}")


def test_without_a_gpu_it_says_so_writes_the_json_and_exits_3(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gpu_check.subprocess, "run", no_subprocess)
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--json", str(out)]) == gpu_check.NO_GPU_EXIT_CODE == 3
    doc = json.loads(out.read_text())
    assert doc["gpu"] is False and doc["exit_code"] == 3
    assert torch.__version__ in doc["reason"] and "no CUDA device" in doc["reason"]
    assert "NO GPU" in capsys.readouterr().err


def test_the_install_plan_keeps_the_systems_packages(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name in ("av-18.1.0-cp311-abi3-manylinux_2_28_x86_64.whl", "albumentations-2.0.8-py3-none-any.whl"):
        (wheels / name).write_bytes(b"")
    site = tmp_path / "site"
    wheels_step, editable = gpu_check.install_commands("python3", wheels, site)
    assert wheels_step[:3] == ["python3", "-m", "pip"]
    for flag in ("--no-index", "--no-deps", "--target"):
        assert flag in wheels_step
    assert wheels_step[wheels_step.index("--target") + 1] == str(site)
    assert wheels_step[-2:] == [str(wheels / "albumentations-2.0.8-py3-none-any.whl"),
                                str(wheels / "av-18.1.0-cp311-abi3-manylinux_2_28_x86_64.whl")]
    assert editable[-2:] == ["-e", str(gpu_check.REPO)]
    for flag in ("--no-index", "--no-deps", "--no-build-isolation"):
        assert flag in editable
    env = gpu_check.environment(site)
    assert env["PYTHONPATH"].split(":")[:2] == [str(gpu_check.REPO), str(site)]


def test_dry_run_prints_every_command_and_runs_none(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_check.subprocess, "run", no_subprocess)
    assert gpu_check.main(["--dry-run", "--wheels", str(tmp_path), "--fit-steps", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6  # 2 install steps, tests, fit, 2 bench_gpu calls
    assert "tests/test_cuda_paths.py" in lines[2]
    assert "--part fit --steps 20" in lines[3]
    assert "--variants eager eager+ckpt" in lines[4] and "--variants compile" in lines[5]


def test_pytest_counts_from_the_closing_line():
    assert gpu_check.pytest_counts(["...", "3 passed, 1 skipped in 4.20s"]) == {"passed": 3, "skipped": 1}
    assert gpu_check.pytest_counts(["1 failed, 2 passed, 1 error in 9s", "tail"]) == {"failed": 1, "passed": 2,
                                                                                      "error": 1}
    assert gpu_check.pytest_counts(["no summary"]) == {}


def fake_gpu(monkeypatch):
    monkeypatch.setattr(gpu_check, "no_gpu_reason", lambda: None)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


@pytest.mark.parametrize("failing", [None, "fit"])
def test_the_parts_results_and_the_exit_code(tmp_path, monkeypatch, failing):
    fake_gpu(monkeypatch)
    calls = []

    def fake_part(name, command, limit_s, env, log):
        calls.append((name, limit_s))
        if name == "fit":
            Path(command[command.index("--out") + 1]).write_text(json.dumps({"syncs_per_step": [2, 2]}))
        return {"part": name, "ok": name != failing, "rc": int(name == failing), "tail": ["2 passed in 1.0s"],
                "seconds": 1.0}

    monkeypatch.setattr(gpu_check, "run_part", fake_part)
    out = tmp_path / "gpu_check.json"
    rc = gpu_check.main(["--skip-install", "--json", str(out)])
    doc = json.loads(out.read_text())
    assert [name for name, _ in calls] == ["tests", "fit", "bench-gpu eager", "bench-gpu compile"]
    assert [limit for _, limit in calls[:3]] == [90, 150, 90]
    assert 470 < calls[3][1] <= 480  # the compiled variant: what is left (the stubs take no time)
    assert doc["device"] == "NVIDIA H100 80GB HBM3" and doc["gpu"] is True
    assert doc["parts"]["tests"]["counts"] == {"passed": 2}
    assert doc["parts"]["fit"]["result"] == {"syncs_per_step": [2, 2]}
    assert (rc, doc["failed"]) == ((1, ["fit"]) if failing else (0, []))


def test_missing_wheels_are_a_failed_install_that_says_what_to_do(tmp_path, monkeypatch):
    fake_gpu(monkeypatch)
    monkeypatch.setattr(gpu_check, "run_part", lambda name, *a: {"part": name, "ok": True, "tail": [], "seconds": 0})
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--wheels", str(tmp_path / "none"), "--json", str(out)]) == 1
    doc = json.loads(out.read_text())
    assert "make gpu-wheels" in doc["parts"]["install"]["error"] and doc["failed"] == ["install"]


def test_a_part_past_its_limit_is_recorded_as_timed_out(tmp_path):
    result = gpu_check.run_part("sleep", [sys.executable, "-c", "import time; print('started', flush=True); "
                                          "time.sleep(30)"], 2, {}, tmp_path / "sleep.log")
    assert result["timed_out"] and not result["ok"] and result["rc"] is None
    assert result["tail"] == ["started"] and result["seconds"] < 20


@pytest.mark.filterwarnings("ignore:called a synchronizing", "ignore:something else")
def test_the_sync_counter_counts_per_step_and_by_line(monkeypatch):
    modes = []
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", modes.append)
    counter = sync_counter.SyncCounter(warmup=1)
    trainer = type("Trainer", (), {"global_step": 0})()

    def step(syncs: int):
        counter.on_train_batch_start(trainer, None, None, trainer.global_step)
        for _ in range(syncs):
            warnings.warn_explicit("called a synchronizing CUDA operation", UserWarning,
                                   "/x/site-packages/jepa_lit/guard.py", 40)
        warnings.warn_explicit("something else", UserWarning, "/x/other.py", 1)
        trainer.global_step += 1

    step(5)  # warm-up: not counted
    step(2)
    step(3)
    counter.on_train_end(trainer, None)
    assert counter.per_step == [2, 3]
    assert counter.sites == {"jepa_lit/guard.py:40": 5}
    assert modes == ["warn", "default", "warn", "default"]


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
@pytest.mark.filterwarnings("ignore:The number of training batches", "ignore:'pin_memory' argument")
def test_the_fit_part_runs_the_study_config_through_the_cli(tmp_path):
    """The fit part with a tiny model on the CPU instead of ViT-B on a GPU (its extra arguments win): the study
    config stack on the fixture tree, the profiler's report, the step times and the sync counter (no window
    opens before its 5 warm-up steps) in its JSON."""
    encoder = "--model.init_args.encoder.init_args."
    out = tmp_path / "fit.json"
    gpu_check.fit_part(3, out, ("--trainer.accelerator=cpu", "--trainer.precision=32-true", f"{encoder}size=tiny",
                                f"{encoder}img_size=32", "--data.init_args.crop_size=32",
                                "--data.init_args.batch_size=2", "--data.init_args.num_workers=0"))
    doc = json.loads(out.read_text())
    assert doc["config"] == "experiments/mixed_fwm_hw_ld.yaml"
    assert (doc["steps_run"], doc["batch"], doc["device"], doc["peak_memory_gib"]) == (3, 2, "cpu", None)
    assert doc["steps"]["timed_steps"] == 1 and doc["steps"]["step_s"] > 0
    assert doc["syncs_per_step"] == [] and doc["syncs_per_step_median"] is None
    rows = doc["simple_profiler"]
    assert rows[0] == "FIT Profiler Report" and any(r.startswith("| run_training_epoch |") for r in rows)
    assert all("  " not in r for r in rows)  # padding squeezed


# ----- gpu_wheels.py ------------------------------------------------------------------------------------------
def test_the_wheel_list_is_what_the_gpu_image_lacks():
    versions = gpu_wheels.dependency_versions()
    for name in ("av", "albumentations", "jsonargparse", "docstring-parser", "pydantic", "torch", "lightning"):
        assert name in versions, name  # docstring-parser: jsonargparse[signatures]'s extra, followed
    missing = gpu_wheels.missing_on_gpu(versions, gpu_wheels.GPU_IMAGE_HAS)
    assert {"av", "albumentations", "albucore", "jsonargparse", "docstring-parser", "typeshed-client",
            "pydantic", "pydantic-core"} <= set(missing)
    assert not {"torch", "lightning", "numpy", "scipy", "opencv-python-headless", "einops"} & set(missing)
    assert missing["av"] == versions["av"]


def test_torch_is_never_downloaded_even_when_the_machine_lacks_it():
    assert gpu_wheels.missing_on_gpu({"torch": "2.13.0+cpu", "av": "18.1.0"}, set()) == {"av": "18.1.0"}


def test_the_download_command_resolves_nothing_and_names_the_platform():
    command = gpu_wheels.download_command({"av": "18.1.0", "foo": "1.0+cpu"}, "out", "3.12", ["pip"])
    assert command[:2] == ["pip", "download"]
    for flag in ("--only-binary=:all:", "--no-deps"):
        assert flag in command
    assert command[command.index("--python-version") + 1] == "3.12"
    assert "manylinux2014_x86_64" in command and command[command.index("-d") + 1] == "out"
    assert command[-2:] == ["av==18.1.0", "foo==1.0"]


def test_present_packages_from_pip_freeze(tmp_path):
    listing = tmp_path / "pip-list.txt"
    listing.write_text("# comment\nTorch==2.11.0\nopencv_python_headless==4.12\nfoo @ file:///x\n\nbar\n")
    assert gpu_wheels.read_present(str(listing)) == {"torch", "opencv-python-headless", "foo", "bar"}


def test_print_lists_the_packages_and_downloads_nothing(monkeypatch, capsys):
    monkeypatch.setattr(gpu_wheels.subprocess, "run", no_subprocess)
    assert gpu_wheels.main(["--print"]) == 0
    out = capsys.readouterr().out
    assert "av==" in out and "pip download --only-binary=:all: --no-deps" in out and "torch==" not in out
