import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from jepa_lit.cli import run_cli

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "experiments" / "smoke.yaml")
TINY = ["--model.init_args.encoder.init_args.depth", "4", "--data.init_args.num_clips", "16",
        "--data.init_args.crop_size", "64", "--data.init_args.batch_size", "2"]


@pytest.mark.slow
def test_fit_through_the_console_script(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "jepa_lit.cli", "fit", "--config", SMOKE, *TINY,
         "--trainer.max_steps", "3", "--trainer.val_check_interval", "3", "--trainer.enable_progress_bar", "false",
         "--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.default_root_dir", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "smoke" / "version_0"
    assert f"run directory:   {run}" in result.stdout and "tensorboard --logdir" in result.stdout
    config = yaml.safe_load((run / "config.yaml").read_text())  # the config is saved next to the run
    assert config["model"]["init_args"]["encoder"]["init_args"]["size"] == "tiny"
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 3
    assert any(k.startswith("target_encoder.blocks.0") for k in checkpoint["state_dict"])
    assert list(run.glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_print_config_shows_every_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["fit", "--config", str(REPO / "experiments" / "base.yaml"), "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    model = printed["model"]["init_args"]
    assert model["encoder"]["init_args"]["size"] == "base" and model["ema_momentum"] == 0.99925
    assert model["optimizer"]["lr"] == 6e-4 and model["predictor_width"] == 256
    assert printed["trainer"]["precision"] == "bf16-mixed" and printed["trainer"]["max_steps"] == 30000
    # Defaults that no YAML sets are shown too (smoke.yaml sets neither the mask sampler nor the guard).
    with pytest.raises(SystemExit):
        run_cli(["fit", "--config", SMOKE, "--print_config"])
    model = yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]
    assert model["mask_sampler"]["class_path"] == "jepa_lit.masks.MultiBlock3D"
    assert model["guard"] == {"on_nonfinite": "stop", "spike_std": None, "spike_window": 100, "spike_min_history": 20,
                              "max_skipped_fraction": 0.1}


@pytest.mark.slow
def test_validate_from_a_checkpoint(tmp_path):
    args = ["--config", SMOKE, *TINY, "--trainer.enable_progress_bar", "false",
            "--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.default_root_dir", str(tmp_path)]
    run_cli(["fit", *args, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "0"])
    ckpt = tmp_path / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    cli = run_cli(["validate", *args, "--ckpt_path", str(ckpt)])
    assert "val/loss" in cli.trainer.callback_metrics, dict(cli.trainer.callback_metrics)


def test_unknown_class_in_a_config_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(f"config: {SMOKE}\nmodel:\n  init_args:\n    objectives:\n"
                      "      - class_path: jepa_lit.objectives.NoSuchObjective\n")
    from jepa_lit.errors import ConfigError

    with pytest.raises(ConfigError) as exit_info:
        run_cli(["fit", "--config", str(config)])
    message = str(exit_info.value)
    assert "names jepa_lit.objectives.NoSuchObjective, which jepa-lit does not have" in message
    assert "jepa_lit.objectives.Delta" in message  # the valid ones are listed


@pytest.mark.slow
def test_resume_from_an_explicit_checkpoint_through_the_console_script(tmp_path):
    args = [sys.executable, "-m", "jepa_lit.cli", "fit", "--config", SMOKE, *TINY, "--trainer.enable_progress_bar",
            "false", "--trainer.limit_val_batches", "0", "--trainer.logger.init_args.save_dir", str(tmp_path)]
    first = subprocess.run([*args, "--trainer.max_steps", "2"], capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    ckpt = tmp_path / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    second = subprocess.run([*args, "--trainer.max_steps", "3", "--ckpt_path", str(ckpt)], capture_output=True,
                            text=True, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert torch.load(tmp_path / "smoke" / "version_1" / "checkpoints" / "last.ckpt",
                      weights_only=False)["global_step"] == 3


@pytest.mark.slow
def test_resume_with_ckpt_path_last_continues_the_same_run(tmp_path):
    args = ["--config", SMOKE, *TINY, "--trainer.enable_progress_bar", "false", "--trainer.limit_val_batches", "0",
            "--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.default_root_dir", str(tmp_path)]
    run_cli(["fit", *args, "--trainer.max_steps", "2"])
    cli = run_cli(["fit", *args, "--trainer.max_steps", "4", "--ckpt_path", "last"])
    assert cli.trainer.global_step == 4
    assert sorted(p.name for p in (tmp_path / "smoke").iterdir()) == ["version_0"]
    assert torch.load(tmp_path / "smoke" / "version_0" / "checkpoints" / "last.ckpt",
                      weights_only=False)["global_step"] == 4
    from jepa_lit.errors import CheckpointError

    with pytest.raises(CheckpointError, match="no .* to resume from"):
        run_cli(["fit", *args[:-4], "--trainer.logger.init_args.save_dir", str(tmp_path / "empty"),
                 "--ckpt_path", "last"])


def test_test_without_a_probe_says_how_to_probe(capsys):
    from jepa_lit.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["test", "--config", SMOKE, "--ckpt_path", "x.ckpt"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--probe synthetic" in err and "diving48" in err and "ssv2" in err


@pytest.mark.slow
def test_mixed_precision_falls_back_to_fp32_on_a_cpu_only_when_the_accelerator_is_auto(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without a GPU
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    import jepa_lit.precision as precision

    # A CPU without bf16 units (whatever this machine's CPU announces): emulated bf16 is slow, so fp32.
    monkeypatch.setattr(precision, "cpu_bf16_units", lambda cpuinfo="/proc/cpuinfo": [])
    args = ["--config", SMOKE, *TINY, "--trainer.logger", "false", "--trainer.precision", "bf16-mixed"]
    with pytest.warns(UserWarning, match=r"no GPU: trainer.precision bf16-mixed -> 32-true"):
        cli = run_cli([*args, "--trainer.accelerator", "auto"], run=False)
    assert cli.trainer.precision == "32-true"
    cli = run_cli([*args, "--trainer.accelerator", "cpu"], run=False)  # named: kept, e.g. to test bf16
    assert cli.trainer.precision == "bf16-mixed"
    # A CPU that announces them keeps bf16-mixed under accelerator: auto too.
    monkeypatch.setattr(precision, "cpu_bf16_units", lambda cpuinfo="/proc/cpuinfo": ["avx512_bf16"])
    with pytest.warns(UserWarning, match=r"bf16-mixed kept on the CPU \(it announces avx512_bf16\)"):
        cli = run_cli([*args, "--trainer.accelerator", "auto"], run=False)
    assert cli.trainer.precision == "bf16-mixed"


@pytest.mark.slow
def test_configs_saved_with_null_defaults_still_load():
    """Configs saved before the defaults were concrete hold guard / optimizer / mask_sampler: null."""
    cli = run_cli(["--config", SMOKE, *TINY, "--trainer.logger", "false", "--model.init_args.guard", "null",
                   "--model.init_args.optimizer", "null", "--model.init_args.mask_sampler", "null"], run=False)
    from jepa_lit.guard import GuardConfig
    from jepa_lit.masks import MultiBlock3D

    assert cli.model.guard.config == GuardConfig() and isinstance(cli.model.mask_sampler, MultiBlock3D)
    assert cli.model.optim.lr > 0


@pytest.mark.slow
def test_a_config_without_a_seed_gets_a_fixed_one(tmp_path):
    """Every process derives the same seed (under torchrun / srun each rank parses the config alone)."""
    config = tmp_path / "no_seed.yaml"
    config.write_text(yaml.safe_dump({k: v for k, v in yaml.safe_load(Path(SMOKE).read_text()).items()
                                      if k != "seed_everything"}))
    seeds = {run_cli(["--config", str(config), *TINY, "--trainer.logger", "false"], run=False).config.seed_everything
             for _ in range(2)}
    assert seeds == {0}


def test_help_lists_the_commands_and_an_unknown_one_names_the_nearest(capsys):
    from jepa_lit.cli import COMMANDS, main

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert set(COMMANDS) == {"fit", "validate", "test", "predict", "data", "export"}
    assert all(f"  {name} " in out for name in COMMANDS)
    with pytest.raises(SystemExit) as exit_:
        main(["fti", "--config", "x.yaml"])
    assert exit_.value.code == 2 and "unknown command 'fti'; did you mean 'fit'?" in capsys.readouterr().err
