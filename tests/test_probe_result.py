"""The typed probe result between eval and the study: eval's results dict reads back as a ProbeResult with
its numbers, the study's reader names the file and the key of a malformed one."""

import pytest

from jepa_lit.atomic import write_json
from jepa_lit.errors import RegistryError
from jepa_lit.eval.probe_result import ProbeResult
from jepa_lit.eval.results import build_results, comparison_settings
from jepa_lit.study.executor import probe_metrics
from jepa_lit.study.registry import read_results


def results_dict() -> dict:
    """What `jepa-lit test --probe` assembles (jepa_lit.eval.evaluate), with small values."""
    return build_results(
        benchmark={"name": "synthetic", "chance": 25.0},
        checkpoint={"path": "/runs/x/checkpoints/last.ckpt", "global_step": 40},
        encoder={"used": "target_encoder", "feature_layer": "last", "description": "EMA target"},
        features={"pooling": "mean", "layer": "last"},
        clip_protocol={"datamodule": "jepa_lit.data.synthetic.SyntheticMotionDataModule", "init_args": {"num_frames": 8}},
        probe={"probe": "attentive", "grid": [{"lr": 1e-3}]},
        training={"epochs": 3, "batch_size": 4},
        splits={"train": 24, "val": 0, "test": 8},
        outcome={"selection": {"selected_head": 0}, "heads": [],
                 "metrics": {"top1": 62.5, "top1_ci95": [30.0, 90.0], "top5": 100.0, "mean_class_acc": 60.0,
                             "num_test_clips": 8, "top_k": 5}},
        seed=0, timing={"total": 1.0})


def test_eval_results_read_back_typed_and_whole(tmp_path):
    results = results_dict()
    path = tmp_path / "probes" / "synthetic.json"
    write_json(path, results, integrity=True)
    result = read_results(path)
    assert (result.benchmark, result.top1, result.top1_ci95, result.epochs) == ("synthetic", 62.5, [30.0, 90.0], 3)
    assert (result.checkpoint_step, result.encoder, result.num_test_clips) == (40, "target_encoder", 8)
    assert result.comparison_key == results["comparison_key"]
    assert result.to_dict() == results and comparison_settings(result.to_dict()) == comparison_settings(results)
    metrics = probe_metrics(result, "synthetic.json")  # the sweep's registry copy
    assert (metrics.top1, metrics.epochs, metrics.encoder, metrics.results) == (62.5, 3, "target_encoder",
                                                                                "probes/synthetic.json")


@pytest.mark.parametrize("damage, message", [
    (lambda r: r["training"].pop("epochs"), r"training.epochs: expected an int, got None"),
    (lambda r: r["metrics"].update(top1="62.5"), r"metrics.top1: expected a number, got '62.5'"),
    (lambda r: r.pop("metrics"), r"metrics: expected an object, got None"),
    (lambda r: r.update(schema="something/1"), r"schema: expected 'jepa_lit.probe_result/1'"),
])
def test_a_malformed_results_file_is_named_with_its_key(tmp_path, damage, message):
    results = results_dict()
    damage(results)
    path = tmp_path / "r.json"
    write_json(path, results, integrity=True)
    with pytest.raises(RegistryError, match=rf"r.json: {message}.*rerun the sweep to probe again"):
        read_results(path)
    with pytest.raises(RegistryError, match=message):
        ProbeResult.from_dict(results)


def test_eval_refuses_to_assemble_a_result_the_study_cannot_read():
    with pytest.raises(RegistryError, match="training.epochs: expected an int"):
        build_results(**{**dict(benchmark={"name": "synthetic"}, checkpoint={"path": "x.ckpt"},
                                 encoder={"used": "encoder", "feature_layer": "last"}, features={"pooling": "mean"},
                                 clip_protocol={"datamodule": "D", "init_args": {}}, probe={"probe": "linear"},
                                 training={"epochs": None, "batch_size": 4}, splits={}, seed=0, timing={},
                                 outcome={"selection": {}, "heads": [], "metrics": {"top1": 1.0}})})
