"""`jepa-lit test --probe <benchmark>` end to end, the results JSON, the shipped probe configs, the online probe."""

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml

from jepa_lit.cli import main, run_cli
from jepa_lit.cli.probe import ProbeCLI, find_probe_name
from jepa_lit.config import expand_config_stack
from jepa_lit.data.fixtures import make_diving48, make_ucf101
from jepa_lit.eval.benchmarks import BENCHMARKS
from jepa_lit.eval.results import check_comparable, compare

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "experiments" / "smoke.yaml")
QUIET = ["--trainer.enable_progress_bar", "false"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny pretraining run through the CLI (depth 2, 64 px, 16 clips, one epoch of 3 steps), with an
    online probe on a different labelled DataModule (32 px synthetic clips)."""
    root = tmp_path_factory.mktemp("pretrain")
    online = root / "online.yaml"
    online.write_text(yaml.safe_dump({"trainer": {"callbacks": [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"save_last": True}},
        {"class_path": "jepa_lit.callbacks.online_probe.OnlineProbe",
         "init_args": {"every_n_epochs": 1, "name": "synthetic", "epochs": 2, "batch_size": 8,
                       "datamodule": {"class_path": "jepa_lit.data.synthetic.SyntheticMotionDataModule",
                                      "init_args": {"num_clips": 16, "crop_size": 32, "total_frames": 8}}}},
    ]}}))
    cli = run_cli(["fit", "--config", SMOKE, "--config", str(online), *QUIET,
                   "--model.init_args.encoder.init_args.depth", "2", "--data.init_args.num_clips", "16",
                   "--trainer.max_steps", "-1", "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "0",
                   "--trainer.logger.init_args.save_dir", str(root), "--trainer.default_root_dir", str(root)])
    ckpt = root / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    return cli, ckpt


@pytest.mark.slow
def test_online_probe_logs_top1_during_pretraining(pretrained):
    cli, _ = pretrained
    probe = next(c for c in cli.trainer.callbacks if type(c).__name__ == "OnlineProbe")
    assert len(probe.history) == 1 and 0.0 <= probe.history[0][1] <= 100.0
    assert "online_probe/synthetic/top1" in cli.trainer.callback_metrics


TINY_SYNTHETIC = ["--data.num_clips", "24", "--data.crop_size", "32", "--trainer.max_epochs", "3",
                  "--model.lrs", "[0.001, 0.0003]", *QUIET]


@pytest.mark.slow
def test_probe_synthetic_end_to_end_through_the_cli(pretrained, capsys):
    _, ckpt = pretrained
    main(["test", "--probe", "synthetic", "--ckpt_path", str(ckpt), *TINY_SYNTHETIC])
    out = capsys.readouterr().out
    # two heads: chosen on a validation split held out of the training clips (the default)
    assert "selected head" in out and "rule: the head with the highest top-1 on a validation split" in out
    assert "95% CI" in out and "OPTIMISTIC" not in out
    (path,) = (ckpt.parent.parent / "probes").glob("synthetic-last-target_encoder-????????.json")  # not its record
    results = json.loads(path.read_text())
    # everything a comparison needs
    assert results["checkpoint"]["path"] == str(ckpt.resolve()) and results["checkpoint"]["global_step"] == 3
    assert results["encoder"]["used"] == "target_encoder" and results["encoder"]["target_mode"] == "ema"
    assert results["encoder"]["feature_layer"].startswith("final block") and results["encoder"]["feature_dim"] == 192
    assert results["probe"]["probe"] == "attentive" and results["probe"]["attn_heads_used"] == 8
    assert results["probe"]["grid"] == [{"lr": 0.001, "weight_decay": 0.01}, {"lr": 0.0003, "weight_decay": 0.01}]
    assert results["training"]["epochs"] == 3 and results["training"]["batch_size"] == 32
    assert results["training"]["optimizer"] == "AdamW" and results["seed"] == 0
    assert results["features"]["pooling"] == "tokens" and results["features"]["tokens_per_clip"] == 4 * 2 * 2
    assert results["features"]["dtype"] == "float16" and results["features"]["cache_hit"] is False
    clip = results["clip_protocol"]
    assert clip["datamodule"] == "jepa_lit.data.synthetic.SyntheticMotionDataModule"
    assert clip["init_args"]["num_frames"] == 8 and clip["init_args"]["seed"] == 42 and clip["test_views"] == 1
    # pretrained at 64 px, probed at 32 px: warned once, and recorded in the results
    assert clip["trained_at"] == {"num_frames": 8, "crop_size": 64}
    assert len(results["warnings"]) == 1 and "data.crop_size: 64 -> 32" in results["warnings"][0]
    assert "num_frames" not in results["warnings"][0] and "warning: probing" in out
    assert results["features"]["layer"] == "last" and results["features"]["val_fraction"] == 0.1
    assert results["splits"] == {"train": 17, "val": 2, "test": 5, "num_classes": 8,
                                 "clips": {"train": {"used": 19, "dropped": 0, "bad_files": []},
                                           "test": {"used": 5, "dropped": 0, "bad_files": []}}}
    metrics = results["metrics"]
    assert set(metrics) >= {"top1", "top1_ci95", "top5", "mean_class_acc", "num_test_clips"}
    lo, hi = metrics["top1_ci95"]
    assert lo <= metrics["top1"] <= hi and metrics["num_test_clips"] == 5
    assert len(results["heads"]) == 2 and results["selection"]["rule"] == "val_top1"
    assert results["selection"]["optimistic"] is False and results["selection"]["validation"] == {
        "source": "held out of the training clips", "fraction": 0.1, "seed": 0, "stratified_by_class": True, "clips": 2}
    assert results["heads"][results["selection"]["selected_head"]]["top1"] == metrics["top1"]
    assert results["comparison_key"] and results["versions"]["torch"] == torch.__version__
    numerics = results["numerics"]  # threads and kernels: what else decides the numbers
    assert numerics["torch_threads"] >= 1 and numerics["cpu_capability"] == torch.backends.cpu.get_cpu_capability()

    # a rerun reads the cache and gives the same numbers (the probe is seeded after extraction)
    main(["test", "--probe", "synthetic", "--ckpt_path", str(ckpt), *TINY_SYNTHETIC, "--output", str(path.with_name("again.json"))])
    again = json.loads(path.with_name("again.json").read_text())
    assert again["features"]["cache_hit"] is True and again["heads"] == results["heads"]
    assert check_comparable([results, again]) == results["comparison_key"]
    assert "target_encoder" in compare([results, again])

    # results probed with other settings are refused side by side (the release mixed 50 and 100 epochs)
    other = copy.deepcopy(results)
    other["training"]["epochs"] = 50
    with pytest.raises(ValueError, match="not comparable.*epochs: 3 != 50"):
        check_comparable([results, other])


@pytest.mark.slow
def test_feature_layer_and_optimistic_selection_through_the_cli(pretrained, tmp_path, capsys):
    """FWM's dynamics channels (the last 384 of ViT-tiny's 768 hierarchical ones) in their own cache entry,
    and the test-set maximum over heads, labelled optimistic in the JSON and the printout."""
    _, ckpt = pretrained
    out = {name: tmp_path / f"{name}.json" for name in ("last", "dynamics")}
    main(["test", "--probe", "synthetic", "--ckpt_path", str(ckpt), *TINY_SYNTHETIC, "--output", str(out["last"]),
          "--model.selection", "test_top1"])
    assert "OPTIMISTIC" in capsys.readouterr().out
    main(["test", "--probe", "synthetic", "--ckpt_path", str(ckpt), *TINY_SYNTHETIC, "--output", str(out["dynamics"]),
          "--features.layer", "dynamics", "--model.selection", "test_top1"])
    last, dynamics = (json.loads(path.read_text()) for path in out.values())
    assert dynamics["features"]["layer"] == "dynamics" and dynamics["features"]["app_ratio"] == 0.5
    assert dynamics["features"]["dim"] == 384 and last["features"]["dim"] == 192
    assert "Z_dyn" in dynamics["encoder"]["feature_layer"] and dynamics["probe"]["num_probe_parameters"] > \
        last["probe"]["num_probe_parameters"]  # the probe sized itself from the features
    assert dynamics["features"]["cache_key"] != last["features"]["cache_key"]
    assert dynamics["features"]["cache_dir"] != last["features"]["cache_dir"]
    assert dynamics["comparison_key"] != last["comparison_key"]  # other channels: another measurement
    for results in (last, dynamics):
        assert results["selection"]["optimistic"] is True and results["selection"]["validation"] is None
        assert all(head["top1"] is not None for head in results["heads"])  # every head scored on the test clips
    assert "optimistic" in compare([last, {**last, "checkpoint": {"path": "other"}}])


@pytest.mark.slow
def test_random_init_control_through_the_cli(pretrained, tmp_path):
    _, ckpt = pretrained
    out = tmp_path / "random.json"
    main(["test", "--probe", "synthetic", "--ckpt_path", str(ckpt), "--encoder", "random_init", "--output", str(out),
          *TINY_SYNTHETIC])
    results = json.loads(out.read_text())
    assert results["encoder"]["used"] == "random_init" and "control" in results["encoder"]["description"]


@pytest.mark.slow
def test_a_real_benchmark_from_its_fixture_tree_with_multi_view_test_clips(pretrained, tmp_path):
    _, ckpt = pretrained
    root = tmp_path / "ucf101"
    make_ucf101(root, broken=False)
    out = tmp_path / "ucf.json"
    main(["test", "--probe", "ucf101", "--ckpt_path", str(ckpt), "--data.root", str(root), "--data.num_frames", "4",
          "--data.crop_size", "32", "--data.num_workers", "0", "--data.eval_num_views", "2",
          "--features.batch_size", "4", "--trainer.max_epochs", "2", "--output", str(out), *QUIET])
    results = json.loads(out.read_text())
    assert {k: results["splits"][k] for k in ("train", "val", "test", "num_classes")} == {
        "train": 6, "val": 0, "test": 3, "num_classes": 101}
    assert results["splits"]["clips"]["test"] == {"used": 3, "dropped": 0, "bad_files": []}
    assert results["clip_protocol"]["train_views"] == 1 and results["clip_protocol"]["test_views"] == 2
    assert "averaged" in results["clip_protocol"]["multi_view"]
    assert results["probe"]["lrs"] == [3e-4] and results["training"]["epochs"] == 2  # ucf101 default lr, overridden epochs


@pytest.mark.slow
def test_bad_clips_are_dropped_counted_and_reported_not_substituted(pretrained, tmp_path, capsys):
    """Diving-48's fixture: 3 good test videos and one missing; 6 good train videos, one zero-byte and
    one truncated. Each bad clip is left out of its split (a training-style substitute would score a
    good clip twice), and the results say which and why."""
    _, ckpt = pretrained
    root = tmp_path / "diving48"
    make_diving48(root)
    out = tmp_path / "diving48.json"
    main(["test", "--probe", "diving48", "--ckpt_path", str(ckpt), "--data.root", str(root), "--data.num_frames", "4",
          "--data.crop_size", "32", "--data.num_workers", "0", "--features.batch_size", "4",
          "--trainer.max_epochs", "2", "--output", str(out), *QUIET])
    assert "bad clips dropped: train 2, test 1" in capsys.readouterr().out
    results = json.loads(out.read_text())
    splits, metrics = results["splits"], results["metrics"]
    assert splits["test"] == 3 and metrics["num_test_clips"] == 3  # the 3 valid test videos, each scored once
    assert splits["train"] + splits["val"] == 6
    rgb = root / "rgb"
    assert splits["clips"]["test"] == {"used": 3, "dropped": 1, "bad_files": [
        {"path": str(rgb / "notOnDisk__00000.mp4"), "reason": "file not found (listed in the annotations but missing on disk)"}]}
    train = splits["clips"]["train"]
    assert train["used"] == 6 and train["dropped"] == 2
    assert [(Path(b["path"]).name, b["reason"].split(":")[0]) for b in train["bad_files"]] == [
        ("zeroBytes___00000.mp4", "zero-byte file"), ("truncated__00000.mp4", "cannot open container")]
    # the metrics count the valid clips only: the confusion matrix and the bootstrap see 3 test clips
    assert sum(map(sum, metrics["confusion_matrix"])) == 3


def test_unknown_benchmark_lists_the_valid_ones_and_bad_checkpoints_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["test", "--probe", "kinetics", "--ckpt_path", "x.ckpt"])
    assert exit_info.value.code == 2
    assert "diving48, imagenet100, ssv2, synthetic, synthetic_appearance, ucf101" in capsys.readouterr().err
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, plain)
    with pytest.raises(SystemExit):
        main(["test", "--probe", "synthetic", "--ckpt_path", str(plain), *QUIET])
    assert "not a jepa-lit pretraining checkpoint" in capsys.readouterr().err


def printed_config(args, capsys) -> dict:
    with pytest.raises(SystemExit) as exit_info:
        ProbeCLI(BENCHMARKS[args[1]], [*args, "--print_config"])
    assert exit_info.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_each_probe_yaml_writes_out_the_benchmark_defaults(name, capsys):
    defaults = printed_config(["--probe", name, "--ckpt_path", "x.ckpt"], capsys)
    from_yaml = printed_config(["--probe", name, "--ckpt_path", "x.ckpt",
                                "--config", str(REPO / "experiments" / "probes" / f"{name}.yaml")], capsys)
    from_yaml.pop("config", None)
    assert from_yaml == defaults
    # `jepa-lit test --config experiments/probes/<name>.yaml --ckpt_path ...` is routed to the probe too
    assert find_probe_name(["--config", str(REPO / "experiments" / "probes" / f"{name}.yaml")]) == name
    benchmark = BENCHMARKS[name]
    assert defaults["model"]["probe"] == benchmark.probe and defaults["trainer"]["max_epochs"] == benchmark.epochs
    assert defaults["model"]["lrs"] == [benchmark.lr] and defaults["features"]["batch_size"] == benchmark.batch_size


@pytest.mark.slow
def test_official_weights_are_probed_through_the_cli(pretrained, tmp_path):
    """An official-layout file (target_encoder / encoder entries, module.backbone. prefixes, no jepa_lit
    metadata) is probed with --encoder official; its target_encoder weights are the ones used, and the
    results JSON says so."""
    from jepa_lit.eval.checkpoint import load_eval_encoder
    from jepa_lit.models.official import export_official

    _, ckpt = pretrained
    trained = load_eval_encoder(str(ckpt))
    module = torch.nn.Module()
    module.encoder = module.target_encoder = trained.encoder
    official = tmp_path / "vjepa21_tiny.pt"
    torch.save({**export_official(module), "epoch": 1}, official)
    out = tmp_path / "official.json"
    config = json.dumps({k: v for k, v in trained.encoder_config.items() if v is not None})
    main(["test", "--probe", "synthetic", "--ckpt_path", str(official), "--encoder", "official",
          "--official_encoder", config, "--output", str(out), *TINY_SYNTHETIC])
    results = json.loads(out.read_text())
    assert results["encoder"]["used"] == "official"
    assert results["encoder"]["weights_sha256"] == trained.weights_sha256  # the very same weights
    report = results["encoder"]["load_report"]  # which entry was read, and how the load went
    assert report["entry"] == "target_encoder" and report["layout"] == "V-JEPA 2.1"
    assert report["kept_initial"] == [] and report["ignored"] == [] and report["num_loaded"] > 0
    assert report["rope_check"].startswith("consistent with a jepa-lit export")  # the recorded settings
    with pytest.raises(SystemExit):  # the size does not fit the weights: strict loading refuses
        main(["test", "--probe", "synthetic", "--ckpt_path", str(official), "--encoder", "official",
              "--official_encoder", '{size: small, depth: 2}', "--output", str(out), *TINY_SYNTHETIC])


def test_probe_configs_stack_like_fit_configs(tmp_path):
    """A probe YAML may name others under config: (the benchmark included), as fit configs do."""
    parent = tmp_path / "parent.yaml"
    parent.write_text("probe: synthetic\ntrainer:\n  max_epochs: 3\n")
    child = tmp_path / "child.yaml"
    child.write_text("config: [parent.yaml]\nfeatures:\n  batch_size: 7\n")
    assert find_probe_name(["--config", str(child)]) == "synthetic"
    cli = ProbeCLI(BENCHMARKS["synthetic"], expand_config_stack(["--config", str(child), "--ckpt_path", "x.ckpt"]))
    assert cli.config.trainer.max_epochs == 3 and cli.config.features.batch_size == 7
