"""The pieces of `make demo`: precision auto's choice from the CPU's flags, the figure, the summary sentence;
and (slow) the demo config end to end at a few steps."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from lightning.fabric.utilities.data import AttributeDict

from jepa_lit.precision import auto_precision, resolve_precision_auto
from jepa_lit.demo import loss_curves, probe_curves, summary_sentence, wilson_interval, write_demo_plot

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def cpuinfo_with(tmp_path, flags: str) -> str:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    return str(path)


@pytest.mark.parametrize("flags, expected", [("fpu sse2 avx2 fma", "32-true"),
                                             ("fpu avx2 avx512f avx512_bf16", "bf16-mixed"),
                                             ("fpu avx512f amx_bf16 amx_tile", "bf16-mixed")])
def test_precision_auto_picks_bf16_only_on_cpus_with_bf16_units(tmp_path, no_gpu, flags, expected):
    precision, why = auto_precision("cpu", cpuinfo_with(tmp_path, flags))
    assert precision == expected
    assert ("announces no bf16 units" in why) == (expected == "32-true")


def test_precision_auto_is_replaced_in_the_config_and_said(tmp_path, no_gpu, capsys):
    config = AttributeDict(accelerator="auto", precision="auto")
    message = resolve_precision_auto(config, cpuinfo_with(tmp_path, "fpu avx2"))
    assert config.precision == "32-true"
    assert message.startswith("trainer.precision: auto -> 32-true (no GPU")
    assert message in capsys.readouterr().out
    asked = AttributeDict(accelerator="cpu", precision="bf16-mixed")  # a precision asked for is kept
    assert resolve_precision_auto(asked, cpuinfo_with(tmp_path, "fpu avx2")) is None
    assert asked.precision == "bf16-mixed"


def test_precision_auto_picks_bf16_on_a_gpu_that_supports_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Test GPU")
    assert auto_precision("auto", "/nonexistent") == ("bf16-mixed", "the GPU (Test GPU) supports bf16")
    assert auto_precision("cpu", "/nonexistent")[0] == "32-true"  # accelerator: cpu asks for the CPU


def test_wilson_interval_known_values():
    low, high = wilson_interval(50.0, 40)
    assert low == pytest.approx(35.2, abs=0.1) and high == pytest.approx(64.8, abs=0.1)
    assert wilson_interval(0.0, 10)[0] == 0.0 and wilson_interval(100.0, 10)[1] == 100.0
    with pytest.raises(ValueError, match="count=0"):
        wilson_interval(50.0, 0)


def test_summary_sentence_says_gain_only_when_the_interval_clears_random_init():
    clear = summary_sentence("linear probe", (25.0, 12.5, 37.5), (55.0, 40.0, 70.0), 40)
    assert clear.startswith("Pretraining raised linear probe accuracy on 40 held-out test clips from 25.0% (random "
                            "init, 95% CI 12.5-37.5) to 55.0% (95% CI 40.0-70.0) (unpaired")
    unclear = summary_sentence("linear probe", (25.0, 12.5, 37.5), (30.0, 17.5, 45.0), 40)
    assert unclear.startswith("Pretraining did not clearly raise") and "30.0% (pretrained" in unclear
    worse = summary_sentence("attentive probe", (72.5, 57.5, 85.0), (67.5, 55.0, 80.0), 40)
    assert worse.startswith("Pretraining did not raise attentive probe accuracy") and "72.5% (random init" in worse


def test_curves_are_read_from_the_scalar_tags():
    scalars = {"online_probe/linear_mean/top1": [(0, 20.0), (59, 30.0)], "train/pred": [(4, 0.7)],
               "train/loss": [(4, 0.7)], "train/context_weight": [(4, 0.0)], "train/ema_momentum": [(4, 0.99)],
               "health/context_rank": [(9, 15.0)]}
    assert probe_curves(scalars) == {"linear_mean": [(0, 20.0), (59, 30.0)]}
    assert sorted(loss_curves(scalars)) == ["loss", "pred"]


def test_write_demo_plot_writes_a_png(tmp_path):
    curves = {"linear_mean": [(0, 21.9), (60, 28.1), (120, 40.6)], "attentive_tokens": [(0, 78.1), (60, 65.6)]}
    losses = {"pred": [(5, 0.8), (60, 0.4), (120, 0.3)]}
    test = {"random init": (25.0, 12.5, 40.0), "pretrained": (45.0, 30.0, 60.0)}
    path = write_demo_plot(tmp_path / "demo.png", curves, losses, val_clips=32, test=test, test_probe="linear")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 500 and height > 500
    with pytest.raises(ValueError, match="no online probe curve"):
        write_demo_plot(tmp_path / "empty.png", {}, losses, val_clips=32)


@pytest.mark.slow
def test_the_demo_runs_end_to_end_on_a_few_steps(tmp_path, monkeypatch, capsys):
    """experiments/demo.yaml shortened to 4 steps and 1 probe epoch, then its two test probes (experiments/probes/
    demo.yaml on 40 clips) and jepa_lit.demo."""
    from jepa_lit.cli import main
    from jepa_lit.demo import main as demo_main

    import yaml

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    runs = tmp_path / "runs"
    config = yaml.safe_load((EXPERIMENTS / "demo.yaml").read_text())
    for callback in config["trainer"]["callbacks"]:  # the online probes: after every epoch, one epoch, 20 clips
        if callback["class_path"].endswith("OnlineProbe"):
            callback["init_args"].update(every_n_epochs=1, epochs=1)
            callback["init_args"]["datamodule"]["init_args"]["num_clips"] = 20
    (tmp_path / "demo.yaml").write_text(yaml.safe_dump(config))
    short = ["--trainer.max_steps", "4", "--trainer.logger.init_args.save_dir", str(runs),
             "--trainer.default_root_dir", str(runs),
             "--data.init_args.num_clips", "10", "--data.init_args.batch_size", "2"]
    main(["fit", "--config", str(tmp_path / "demo.yaml"), *short])
    assert "trainer.precision: auto -> " in capsys.readouterr().out
    run = next((runs / "demo").glob("version_*"))
    outputs = {}
    for encoder in ("checkpoint", "random_init"):
        outputs[encoder] = run / "probes" / f"{encoder}.json"
        main(["test", "--probe", "synthetic", "--config", str(EXPERIMENTS / "probes" / "demo.yaml"),
              "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--encoder", encoder,
              "--data.init_args.num_clips", "40", "--trainer.max_epochs", "1", "--output", str(outputs[encoder])])
    assert demo_main([str(run), str(outputs["checkpoint"]), str(outputs["random_init"])]) == 0
    printed = capsys.readouterr().out
    assert f"figure: {run / 'demo.png'}" in printed and (run / "demo.png").stat().st_size > 10_000
    assert "Pretraining " in printed.strip().splitlines()[-1]
    top1 = json.loads(outputs["checkpoint"].read_text())["metrics"]["top1"]
    assert f"{top1:.1f}%" in printed.strip().splitlines()[-1]
