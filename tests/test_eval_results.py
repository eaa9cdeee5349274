"""`python -m jepa_lit.eval.results` on files that are not probe results, and the probe Trainer's default
logger (TensorBoard next to the results JSON, ``trainer.logger: false`` still possible)."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
from lightning.pytorch.loggers import TensorBoardLogger

from jepa_lit.cli.probe import ProbeCLI
from jepa_lit.eval.benchmarks import BENCHMARKS, ProbeLogger, place_probe_logger
from jepa_lit.eval.results import main as results_main

pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")


def test_unreadable_results_files_are_named_without_a_traceback(tmp_path, capsys):
    (tmp_path / "synthetic-last.json").write_text("{}")
    missing = tmp_path / "synthetic-lats.json"
    assert results_main([str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"results file not found: {missing}" in err and f"did you mean {tmp_path / 'synthetic-last.json'}?" in err

    broken = tmp_path / "broken.json"
    broken.write_text('{"metrics": ')
    assert results_main([str(broken)]) == 2
    assert f"{broken} is not JSON" in capsys.readouterr().err

    assert results_main([str(tmp_path)]) == 2
    assert f"cannot read {tmp_path}" in capsys.readouterr().err

    other = tmp_path / "other.json"
    other.write_text(json.dumps({"loss": 1.0}))
    assert results_main([str(other)]) == 2
    assert f"{other} is not a probe results JSON" in capsys.readouterr().err


def test_the_default_probe_logger_is_placed_next_to_the_results(tmp_path):
    trainer = L.Trainer(logger=ProbeLogger(), enable_checkpointing=False, enable_progress_bar=False)
    folder = place_probe_logger(trainer, tmp_path / "probes", "synthetic")
    assert folder == str(tmp_path / "probes" / "tb" / "synthetic" / "version_0")
    (logger,) = trainer.loggers
    assert type(logger) is TensorBoardLogger and logger.log_dir == folder

    given = L.Trainer(logger=ProbeLogger(save_dir=str(tmp_path / "mine"), name="x"), enable_checkpointing=False)
    assert place_probe_logger(given, tmp_path / "probes", "synthetic") == str(tmp_path / "mine" / "x" / "version_0")

    own = TensorBoardLogger(save_dir=str(tmp_path / "own"), name="probe", version="v")
    custom = L.Trainer(logger=own, enable_checkpointing=False)
    assert place_probe_logger(custom, tmp_path, "synthetic") == own.log_dir and custom.logger is own

    off = L.Trainer(logger=False, enable_checkpointing=False)
    assert place_probe_logger(off, tmp_path, "synthetic") is None and off.loggers == []


def test_probe_cli_defaults_to_the_probe_logger_and_false_turns_it_off():
    args = ["--probe", "synthetic", "--ckpt_path", "x.ckpt", "--data.num_clips", "8"]
    assert isinstance(ProbeCLI(BENCHMARKS["synthetic"], args).trainer.logger, ProbeLogger)
    assert ProbeCLI(BENCHMARKS["synthetic"], [*args, "--trainer.logger", "false"]).trainer.loggers == []
    demo = Path(__file__).resolve().parents[1] / "experiments" / "probes" / "synthetic_demo.yaml"
    assert isinstance(ProbeCLI(BENCHMARKS["synthetic"], [*args, "--config", str(demo)]).trainer.logger, ProbeLogger)


def test_results_of_another_behaviour_version_are_not_comparable():
    from jepa_lit.eval.results import comparison_key

    results = {"benchmark": "synthetic", "probe": {"probe": "attentive"}, "training": {"epochs": 2, "batch_size": 4},
               "encoder": {"feature_layer": "final"}, "features": {"pooling": "tokens"},
               "clip_protocol": {"datamodule": "x.Y", "init_args": {"num_frames": 8}},
               "versions": {"jepa_lit_behaviour": 2}}
    older = {**results, "versions": {}}  # written before the behaviour version existed: 1
    assert comparison_key(results) != comparison_key(older)
    assert comparison_key(results) == comparison_key({**results, "versions": {"jepa_lit_behaviour": 2, "torch": "x"}})


def test_the_selection_rule_matters_to_comparisons_only_when_there_is_a_choice():
    from jepa_lit.eval.results import comparison_key

    def results(selection: str, grid: list) -> dict:
        return {"benchmark": "synthetic", "probe": {"probe": "attentive", "selection": selection, "grid": grid},
                "training": {"epochs": 2, "batch_size": 4}, "encoder": {"feature_layer": "final"},
                "features": {"pooling": "tokens"}, "clip_protocol": {"datamodule": "x.Y", "init_args": {}}}

    one, two = [{"lr": 1e-3, "weight_decay": 0.01}], [{"lr": 1e-3, "weight_decay": 0.01}, {"lr": 1e-4, "weight_decay": 0.01}]
    # one head (every benchmark's default): results from before validation selection was the default still compare
    assert comparison_key(results("test_top1", one)) == comparison_key(results("val_top1", one))
    assert comparison_key(results("test_top1", two)) != comparison_key(results("val_top1", two))
