"""Issue 24's hostile cases, one mechanism per class, each case a row of the table in docs/checkpoints.md
(tests/test_hostile_cases.py runs ROUND3_CASES against the table; the tests below check what the message
alone cannot: files unchanged, hashes moved, nothing written).

Each case returns (outcome, message) like the cases of tests/test_hostile_cases.py and asserts the state
of the files itself.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from jepa_lit.atomic import file_sha256, sidecar_path
from jepa_lit.errors import JepaLitError

HERE = Path(__file__).resolve().parent


def raised(call) -> tuple[str, str]:
    """("exit N", message) of the JepaLitError ``call()`` raises (the CLI prints the message, exits N)."""
    with pytest.raises(JepaLitError) as info:
        call()
    return f"exit {info.value.exit_code}", str(info.value)


# ----- 1. a write never replaces a file of another kind ----------------------------------------------------
def probe_output_onto_checkpoint(tmp_path, capsys, monkeypatch):
    """`test --probe ... --output RUN/checkpoints/last.ckpt`: refused before the encoder is loaded (and by
    the writer itself, whoever calls it); the checkpoint and its record are untouched."""
    from test_hostile_cases import run_folder

    from jepa_lit.eval.evaluate import evaluate_checkpoint
    from jepa_lit.eval.results import write_results

    last = run_folder(tmp_path) / "last.ckpt"
    before = (file_sha256(last), sidecar_path(last).read_text())
    with pytest.raises(JepaLitError):
        write_results({"schema": "jepa_lit.probe_result/1"}, str(last))
    outcome = raised(lambda: evaluate_checkpoint(
        benchmark=None, ckpt_path=str(last), datamodule=SimpleNamespace(num_classes=3), data_config={},
        model=None, features=SimpleNamespace(cache_dir=None), trainer=None, output=str(last)))
    assert (file_sha256(last), sidecar_path(last).read_text()) == before
    return outcome


def test_a_write_replaces_only_a_file_of_its_kind(tmp_path):
    from jepa_lit.atomic import WriteRefused, write_json, write_text

    notes = tmp_path / "notes.json"
    notes.write_text("my notes, not JSON\n")
    with pytest.raises(WriteRefused, match="is a text file"):
        write_json(notes, {"a": 1})
    assert notes.read_text() == "my notes, not JSON\n"
    write_json(tmp_path / "r.json", {"a": 1}, integrity=True)
    write_json(tmp_path / "r.json", {"a": 2}, integrity=True)  # its own kind: replaced
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 2}
    assert json.loads(sidecar_path(tmp_path / "r.json").read_text())["kind"] == "json"
    with pytest.raises(WriteRefused, match="integrity record r.json.sha256.json says so"):
        write_text(tmp_path / "r.json", "# a report\n")
    (tmp_path / "empty.ckpt").write_bytes(b"")
    write_json(tmp_path / "empty.ckpt", {})  # an empty file holds nothing to lose


# ----- 6. values that parse but cannot work: exit 2 naming the key --------------------------------------------
SMOKE = HERE.parent / "experiments" / "smoke.yaml"


def fit_refused(capsys, *args: str) -> tuple[str, str]:
    """`jepa-lit fit --config experiments/smoke.yaml ARGS` stopped before anything is built."""
    from test_hostile_cases import cli

    return cli(capsys, ["fit", "--config", str(SMOKE), *args])


def lr_zero(tmp_path, capsys, monkeypatch):
    return fit_refused(capsys, "--model.init_args.optimizer.lr", "0")


def objective_config(tmp_path, objectives: str) -> str:
    path = tmp_path / "objectives.yaml"
    path.write_text(f"model:\n  init_args:\n    objectives: {objectives}\n")
    return str(path)


def objective_weight_nan(tmp_path, capsys, monkeypatch):
    config = objective_config(tmp_path, "[{class_path: jepa_lit.objectives.Delta, init_args: {weight: .nan}}]")
    return fit_refused(capsys, "--config", config)


def objective_twice(tmp_path, capsys, monkeypatch):
    config = objective_config(tmp_path, "[{class_path: jepa_lit.objectives.Delta}, "
                                        "{class_path: jepa_lit.objectives.Delta}]")
    return fit_refused(capsys, "--config", config)


def config_includes_itself(tmp_path, capsys, monkeypatch):
    (tmp_path / "a.yaml").write_text("config: [b.yaml]\n")
    (tmp_path / "b.yaml").write_text("config: [a.yaml]\n")
    return fit_refused(capsys, "--config", str(tmp_path / "a.yaml"))


@pytest.mark.parametrize("config, problem", [
    ({"model": {"init_args": {"optimizer": {"lr": -1e-3}}}}, "model.init_args.optimizer.lr=-0.001; expected a positive"),
    ({"model": {"init_args": {"optimizer": {"start_lr": float("nan")}}}}, "optimizer.start_lr=nan; expected a finite"),
    ({"model": {"lrs": [1e-3, 0.0]}}, "model.lrs[1]=0.0; expected a finite number, positive"),
    ({"model": {"weight_decays": [float("inf")]}}, "model.weight_decays[0]=inf"),
    ({"model": {"init_args": {"context_loss_weight": -0.5}}}, "context_loss_weight=-0.5; expected 0 or more"),
    ({"model": {"init_args": {"objectives": [{"class_path": "X", "init_args": {"weight": -1}}]}}},
     "objectives[0].init_args.weight=-1; expected 0 or more"),
])
def test_values_that_cannot_work_are_named(config, problem):
    from jepa_lit.config import check_config_values
    from jepa_lit.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        check_config_values(config)
    assert problem in str(info.value)
    check_config_values({"model": {"init_args": {"optimizer": {"lr": 1e-3, "start_lr": 0}}, "lrs": [1e-3]}})


def test_a_stack_loop_through_a_third_file_is_named(tmp_path):
    from jepa_lit.config import stack_of
    from jepa_lit.errors import ConfigError

    for name, parent in (("a", "b"), ("b", "c"), ("c", "b")):
        (tmp_path / f"{name}.yaml").write_text(f"config: [{parent}.yaml]\n")
    with pytest.raises(ConfigError, match=r"b.yaml -> .*c.yaml -> .*b.yaml"):
        stack_of(tmp_path / "a.yaml")


# ----- 2. what a result depends on, hashed by content ---------------------------------------------------------
def test_the_feature_cache_key_follows_a_list_file_s_content(tmp_path, monkeypatch):
    from jepa_lit.eval.features import cache_key

    monkeypatch.chdir(tmp_path)
    Path("T.txt").write_text("a.avi 0\nb.avi 1\nc.avi 2\n")
    args = {"root": str(tmp_path), "test_list": "T.txt", "batch_size": 4}
    key, description = cache_key("w" * 64, {}, "mean", "jepa_lit.data.ucf101.UCF101DataModule", args)
    assert description["data_files"] == {"T.txt": file_sha256("T.txt")}
    assert cache_key("w" * 64, {}, "mean", "jepa_lit.data.ucf101.UCF101DataModule", args)[0] == key
    Path("T.txt").write_text("a.avi 5\nb.avi 1\n")  # cut to 2 clips, new labels: same name, another key
    assert cache_key("w" * 64, {}, "mean", "jepa_lit.data.ucf101.UCF101DataModule", args)[0] != key
    no_files = {"root": str(tmp_path), "batch_size": 4}  # no file named: the key as before (no data_files entry)
    assert "data_files" not in cache_key("w" * 64, {}, "mean", "x", no_files)[1]


def stacked_probe_spec(tmp_path) -> Path:
    """A sweep whose synthetic probe config stacks a parent (`config: [parent.yaml]`)."""
    from test_sweep import EXPERIMENTS, write_spec

    parent = tmp_path / "probe_parent.yaml"
    parent.write_text((EXPERIMENTS / "probes" / "synthetic.yaml").read_text())
    child = tmp_path / "probe_child.yaml"
    child.write_text("config: [probe_parent.yaml]\nfeatures:\n  pooling: tokens\n")
    return write_spec(tmp_path, regimes={"ucf101": {"config": str(EXPERIMENTS / "ucf101_{variant}.yaml"),
                                                    "probes": ["synthetic"], "variants": ["baseline"]}},
                      seeds=[0], probes={"synthetic": str(child)})


def sweep_probe_parent_edited(tmp_path, capsys, monkeypatch):
    """A finished run probed with a stacked probe config; then the parent's lrs change: the run's result
    is stale (the report marks it) and the sweep probes again (the spec's output name moved)."""
    from jepa_lit.study.checks import find_stale
    from jepa_lit.study.runs import expand

    spec = stacked_probe_spec(tmp_path)
    (run,) = expand(spec)
    before = run.probes[0].output_name
    record = SimpleNamespace(status="done", run_id=run.run_id, regime="ucf101", config_hash=run.config_hash,
                             metrics={"synthetic": SimpleNamespace(results=f"probes/{before}")})
    assert find_stale([record], {"spec": str(spec), "scale": "full"}) == ({}, [])
    parent = tmp_path / "probe_parent.yaml"
    parent.write_text(parent.read_text().replace("lrs: [0.0003]", "lrs: [0.001]"))
    (run,) = expand(spec)
    assert run.probes[0].output_name != before  # so the sweep's plan sees the results JSON missing: probes again
    stale, _ = find_stale([record], {"spec": str(spec), "scale": "full"})
    return "result marked stale", stale[(run.run_id, "synthetic")]


# ----- 5 and 8. a checkpoint resumed or read by a model that is not its run's ---------------------------------
def tiny_module(objectives=(), target_encoder="ema", fn="fit", **kwargs):
    from jepa_lit.models.vit import VisionTransformer
    from jepa_lit.module import JEPAModule

    module = JEPAModule(VisionTransformer(size="tiny", depth=1, img_size=32, num_frames=4), objectives=list(objectives),
                        predictor_width=32, predictor_depth=1, predictor_heads=2, target_encoder=target_encoder,
                        **kwargs)
    module._trainer = SimpleNamespace(datamodule=SimpleNamespace(num_frames=8, crop_size=64),
                                      state=SimpleNamespace(fn=fn), ckpt_path="RUN/checkpoints/last.ckpt")
    return module


def resume_with_other_objectives(tmp_path, capsys, monkeypatch):
    """`fit --config delta.yaml --ckpt_path` a baseline run's checkpoint: refused, naming what differs and
    the way to fine-tune instead (Delta has no weights: only the recorded settings can tell)."""
    from test_hostile_cases import tiny_checkpoint

    from jepa_lit.objectives import Delta

    return raised(lambda: tiny_module([Delta()]).on_load_checkpoint(tiny_checkpoint()))


def validate_ld_on_baseline(tmp_path, capsys, monkeypatch):
    """`validate --config ld.yaml --ckpt_path` a baseline checkpoint written before checkpoints recorded their
    objectives: the weights tell, named by part (not Lightning's Missing keys traceback)."""
    from test_hostile_cases import tiny_checkpoint

    from jepa_lit.objectives import LatentDynamics

    checkpoint = tiny_checkpoint()
    del checkpoint["jepa_lit"]["run"]  # as written before the run's settings were recorded
    return raised(lambda: tiny_module([LatentDynamics()], fn="validate").on_load_checkpoint(checkpoint))


def fit_unrelated_lightning_checkpoint(tmp_path, capsys, monkeypatch):
    from test_hostile_cases import tiny_checkpoint

    checkpoint = tiny_checkpoint()
    del checkpoint["jepa_lit"]  # what another Lightning project saves: a state dict, no jepa-lit entry
    checkpoint["state_dict"] = {"backbone.layer1.weight": checkpoint["state_dict"]["encoder.patch_embed.proj.weight"]}
    return raised(lambda: tiny_module(fn="validate").on_load_checkpoint(checkpoint))


def test_online_target_on_an_ema_checkpoint_is_refused_both_ways():
    from test_hostile_cases import tiny_checkpoint

    from jepa_lit.errors import CheckpointError

    with pytest.raises(CheckpointError, match="model.target_encoder: 'ema' -> 'online'"):
        tiny_module(target_encoder="online").on_load_checkpoint(tiny_checkpoint())
    with pytest.raises(CheckpointError, match="it has weights this model lacks: target_encoder"):
        tiny_module(target_encoder="online", fn="validate").on_load_checkpoint(tiny_checkpoint())
    tiny_module().on_load_checkpoint(tiny_checkpoint())  # its own run's settings: resumes


def test_init_from_starts_a_new_run_from_a_checkpoint_s_weights(tmp_path):
    """The explicit fine-tune: weights that fit are loaded (an LD head stays fresh), nothing else."""
    import torch
    from test_hostile_cases import tiny_checkpoint

    from jepa_lit.checkpointing import AtomicCheckpointIO
    from jepa_lit.objectives import LatentDynamics

    checkpoint = tiny_checkpoint()
    for value in checkpoint["state_dict"].values():
        value.data.fill_(0.25)
    AtomicCheckpointIO().save_checkpoint(checkpoint, tmp_path / "base.ckpt")
    with pytest.warns(UserWarning, match="initialised fresh: objectives.0"):
        module = tiny_module([LatentDynamics()], init_from=str(tmp_path / "base.ckpt"))
    assert torch.all(module.encoder.patch_embed.proj.weight == 0.25)
    assert torch.all(module.target_encoder.patch_embed.proj.weight == 0.25)
    assert not torch.all(next(module.objectives[0].parameters()) == 0.25)


def test_an_export_in_checkpoints_is_not_a_resume_fallback(tmp_path):
    from test_hostile_cases import run_folder

    from jepa_lit.checkpointing.export import export_checkpoint
    from jepa_lit.checkpointing.integrity import newest_intact

    folder = run_folder(tmp_path)
    export_checkpoint(folder / "last.ckpt", folder / "vjepa.pt")  # the newest torch file in the folder
    (folder / "last.ckpt").write_bytes(b"PK damaged")
    assert newest_intact(folder / "last.ckpt") == folder / "step=2.ckpt"


def test_an_export_saved_as_last_ckpt_is_passed_over_by_ckpt_path_last(tmp_path):
    from test_hostile_cases import run_folder

    from jepa_lit.checkpointing.export import export_checkpoint
    from jepa_lit.cli.fit import intact_or_newest_intact

    folder = run_folder(tmp_path)
    export_checkpoint(folder / "step=2.ckpt", folder / "last.ckpt", overwrite=True)
    with pytest.warns(UserWarning, match="it is not a training checkpoint"):
        assert intact_or_newest_intact(folder / "last.ckpt") == folder / "step=2.ckpt"


def sweep_last_checkpoint_deleted(tmp_path, capsys, monkeypatch):
    """A finished sweep run whose last.ckpt was deleted: the old run (probe results too) is moved aside and
    the run pretrains and probes again, never keeping results of another pretraining."""
    from test_sweep import EXPERIMENTS, FakeLaunch, write_spec

    from jepa_lit.study.executor import Executor
    from jepa_lit.study.launchers import run_local
    from jepa_lit.study.runs import expand

    spec = write_spec(tmp_path, regimes={"ucf101": {"config": str(EXPERIMENTS / "ucf101_{variant}.yaml"),
                                                    "probes": ["synthetic"], "variants": ["baseline"]}}, seeds=[0])
    (run,) = expand(spec)
    assert run_local([run], Executor(launch=FakeLaunch(), echo=lambda m: None)) == {run.run_id: "done"}
    old_results = json.loads((run.run_dir / "probes" / run.probes[0].output_name).read_text())
    run.checkpoint.unlink()
    fake, echoed = FakeLaunch(), []
    assert run_local([run], Executor(launch=fake, echo=echoed.append)) == {run.run_id: "done"}
    assert [cmd[3] for _, cmd in fake.calls] == ["fit", "test"]  # pretrained and probed again
    assert "--ckpt_path" not in fake.calls[0][1]
    (aside,) = run.run_dir.parent.glob("seed_0.replaced-*")  # the old run, its results with it
    assert json.loads((aside / "probes" / run.probes[0].output_name).read_text()) == old_results
    assert (run.run_dir / "probes" / run.probes[0].output_name).is_file()  # written by this pretraining's probe
    return "run done, probed again", next(m for m in echoed if "is gone" in m)


# ----- 9. data: bad files and annotations, named, before the work where the index can tell -----------------------
def zero_frame_video(path: Path) -> Path:
    """A valid mp4 container whose video stream holds no frame."""
    import av

    container = av.open(str(path), "w")
    stream = container.add_stream("mpeg4", rate=8)
    stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
    container.start_encoding()  # the header, then no frame at all
    container.close()
    return path


def on_error_raise_zero_frames(tmp_path, capsys, monkeypatch):
    """`data.on_error: raise` and a 0-frame video, read by a DataLoader worker: the file and the reason,
    exit 2, without the worker's stack (errors.short_message)."""
    from torch.utils.data import DataLoader

    from jepa_lit.data.clip_dataset import ClipDataset
    from jepa_lit.data.clip_sampling import UniformClipSampler
    from jepa_lit.data.records import Record
    from jepa_lit.data.transforms import VideoEvalTransform
    from jepa_lit.errors import short_message

    video = zero_frame_video(tmp_path / "empty.mp4")
    dataset = ClipDataset([Record(str(video), 0)], UniformClipSampler(8), VideoEvalTransform(32), 8, on_error="raise")
    with pytest.raises(JepaLitError) as info:
        next(iter(DataLoader(dataset, num_workers=1)))
    return f"exit {info.value.exit_code}", short_message(info.value)


def every_training_file_corrupt(tmp_path, capsys, monkeypatch):
    from jepa_lit.data.clip_dataset import ClipDataset
    from jepa_lit.data.clip_sampling import RandomClipSampler
    from jepa_lit.data.records import Record
    from jepa_lit.data.transforms import VideoTrainTransform

    for name in ("a.mp4", "b.mp4"):
        (tmp_path / name).write_bytes(b"\x00garbage, not a video" * 10)
    dataset = ClipDataset([Record(str(tmp_path / n), 0) for n in ("a.mp4", "b.mp4")], RandomClipSampler(8, 1),
                          VideoTrainTransform(32), 8, on_error="skip", max_retries=3, name="ucf101/train")
    return raised(lambda: dataset[0])


def list_label_out_of_range(tmp_path, capsys, monkeypatch):
    """A test list with label 101 (UCF-101 has 0-100): refused when the index is built, before any clip is
    decoded or any feature extracted."""
    from jepa_lit.data.ucf101 import UCF101DataModule

    (tmp_path / "T.txt").write_text("ApplyEyeMakeup/a.avi 0\nYoYo/b.avi 101\n")
    datamodule = UCF101DataModule(root=str(tmp_path), test_list=str(tmp_path / "T.txt"), num_workers=0)
    return raised(lambda: datamodule.setup("test"))


def ssv2_labels_wrong_json_type(tmp_path, capsys, monkeypatch):
    from test_hostile_cases import cli

    from jepa_lit.data.fixtures import make_ssv2

    make_ssv2(tmp_path / "ssv2")
    (tmp_path / "ssv2" / "labels" / "labels.json").write_text(json.dumps(["Approaching something", "0"]))
    return cli(capsys, ["data", "check", "--dataset", "ssv2", "--root", str(tmp_path / "ssv2")])


def test_annotation_types_and_labels_are_checked_when_indexed(tmp_path):
    from jepa_lit.data.diving48 import read_vocab
    from jepa_lit.data.ssv2 import read_labels
    from jepa_lit.errors import DataError

    (tmp_path / "labels.json").write_text(json.dumps({"Approaching something": "174"}))
    with pytest.raises(DataError, match="label 174 is outside the dataset's 174 classes"):
        read_labels(tmp_path / "labels.json")
    (tmp_path / "labels.json").write_text(json.dumps({"Approaching something": "zero"}))
    with pytest.raises(DataError, match="'zero' is not a class index"):
        read_labels(tmp_path / "labels.json")
    (tmp_path / "Diving48_vocab.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(DataError, match="expected a JSON list .* got a JSON object"):
        read_vocab(tmp_path)


# ----- 3. a run folder: one writer at a time, and a new run never writes into an existing run's folder ---------
def fit_config(tmp_path, version=None, ckpt_path=None):
    from jsonargparse import Namespace

    logger = Namespace(init_args=Namespace(save_dir=str(tmp_path / "runs"), name="smoke", version=version))
    return Namespace(trainer=Namespace(logger=logger), ckpt_path=ckpt_path)


def old_run(tmp_path, version: str = "version_1") -> Path:
    folder = tmp_path / "runs" / "smoke" / version
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.yaml").write_text("trainer: {}\n")
    return folder


def rerun_saved_config(tmp_path, capsys, monkeypatch):
    """`fit --config runs/smoke/version_1/config.yaml --ckpt_path null` (its logger version is 1): the new run
    gets the next free version folder; the old folder is not touched."""
    from jepa_lit.run_folder import claim_run_folder

    old = old_run(tmp_path)
    (tmp_path / "runs" / "smoke" / "version_0").mkdir()
    said, config = [], fit_config(tmp_path, version=1)
    assert claim_run_folder(config, announce=said.append) == tmp_path / "runs" / "smoke" / "version_2"
    assert config.trainer.logger.init_args.version == 2 and sorted(p.name for p in old.iterdir()) == [
        "checkpoints", "config.yaml"]
    return "new version folder", said[0]


def named_version_taken(tmp_path, capsys, monkeypatch):
    from jepa_lit.run_folder import claim_run_folder

    old_run(tmp_path, "seed_0")
    return raised(lambda: claim_run_folder(fit_config(tmp_path, version="seed_0")))


def two_resumes_at_once(tmp_path, capsys, monkeypatch):
    """Two `fit --ckpt_path last` of one run: the second (here, this process) is refused, naming the first."""
    import subprocess
    import sys

    from jepa_lit.run_folder import claim_run_folder

    folder = old_run(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from jepa_lit.run_folder import "
         f"lock_run_folder; lock_run_folder(Path({str(folder)!r})); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        outcome = raised(lambda: claim_run_folder(fit_config(tmp_path, version="version_1", ckpt_path="x.ckpt")))
        assert f"pid {holder.pid}" in outcome[1]
    finally:
        holder.kill()
        holder.wait()
    claim_run_folder(fit_config(tmp_path, version="version_1", ckpt_path="x.ckpt"))  # the first one ended
    return outcome


def test_validate_with_a_run_s_saved_config_writes_into_a_folder_of_its_own(tmp_path):
    """validate / test / predict with `--config RUN/config.yaml --ckpt_path ...`: LightningCLI would replace the
    run's config.yaml with theirs; they get the next version folder instead."""
    from jepa_lit.run_folder import prepare_run_folder

    old_run(tmp_path)
    config = fit_config(tmp_path, version=1, ckpt_path="runs/smoke/version_1/checkpoints/last.ckpt")
    assert prepare_run_folder(config, fit=False) == tmp_path / "runs" / "smoke" / "version_2"


def test_new_runs_at_the_same_moment_take_different_folders(tmp_path):
    from jepa_lit.run_folder import claim_run_folder

    first, second = (claim_run_folder(fit_config(tmp_path)) for _ in range(2))
    assert (first.name, second.name) == ("version_0", "version_1")


def test_the_fit_command_claims_its_folder(tmp_path, monkeypatch):
    """Through the CLI: re-running a saved config (fixed version) writes into a new version folder."""
    import lightning

    from jepa_lit.cli.fit import JepaCLI, run_cli

    monkeypatch.chdir(tmp_path)
    old_run(tmp_path, "version_0")
    for hook in ("before_fit", "after_fit"):
        monkeypatch.setattr(JepaCLI, hook, lambda self: None)
    monkeypatch.setattr(lightning.pytorch.Trainer, "fit", lambda self, *args, **kwargs: None)  # claimed, not trained
    cli = run_cli(["fit", "--config", str(SMOKE), "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
                   "--trainer.logger.init_args.version", "0", "--trainer.default_root_dir", str(tmp_path)])
    assert Path(cli.trainer.logger.log_dir) == tmp_path / "runs" / "smoke" / "version_1"
    assert (tmp_path / "runs" / "smoke" / "version_1" / ".lock").is_file()


# ----- 7. outputs that cannot be written: named before the work ------------------------------------------------
def read_only(monkeypatch, folder: Path) -> Path:
    """``folder`` read-only (mode 0555; and denied by os.access, since root ignores the mode)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == folder else real(p, mode, **kw))
    return folder


def read_only_runs_folder(tmp_path, capsys, monkeypatch):
    from test_hostile_cases import cli

    runs = read_only(monkeypatch, tmp_path / "ro")
    try:
        return cli(capsys, ["fit", "--config", str(SMOKE), "--trainer.logger.init_args.save_dir", str(runs)])
    finally:
        runs.chmod(0o755)


def read_only_checkpoints_folder(tmp_path, capsys, monkeypatch):
    """A run resumed into its folder whose checkpoints/ is read-only: refused before training, not at the
    first save."""
    from jepa_lit.run_folder import prepare_run_folder

    folder = old_run(tmp_path)
    read_only(monkeypatch, folder / "checkpoints")
    try:
        config = fit_config(tmp_path, version="version_1", ckpt_path=str(folder / "checkpoints" / "last.ckpt"))
        return raised(lambda: prepare_run_folder(config))  # what `jepa-lit fit` calls before it builds anything
    finally:
        (folder / "checkpoints").chmod(0o755)


def read_only_probe_output(tmp_path, capsys, monkeypatch):
    from test_hostile_cases import run_folder

    from jepa_lit.eval.evaluate import evaluate_checkpoint

    last = run_folder(tmp_path) / "last.ckpt"
    out = read_only(monkeypatch, tmp_path / "results")
    try:
        return raised(lambda: evaluate_checkpoint(
            benchmark=None, ckpt_path=str(last), datamodule=SimpleNamespace(num_classes=3), data_config={},
            model=None, features=SimpleNamespace(cache_dir=None), trainer=None, output=str(out / "r.json")))
    finally:
        out.chmod(0o755)


def test_a_read_only_feature_cache_is_named_before_the_encoder_loads(tmp_path, monkeypatch):
    from test_hostile_cases import run_folder

    from jepa_lit.atomic import NotWritable
    from jepa_lit.eval.evaluate import evaluate_checkpoint

    last = run_folder(tmp_path) / "last.ckpt"
    cache = read_only(monkeypatch, tmp_path / "cache")
    try:
        with pytest.raises(NotWritable, match=f"feature cache {cache}: cannot be written: {cache} is not writable"):
            evaluate_checkpoint(benchmark=None, ckpt_path=str(last), datamodule=SimpleNamespace(num_classes=3),
                                data_config={}, model=None, features=SimpleNamespace(cache_dir=str(cache)),
                                trainer=None)
    finally:
        cache.chmod(0o755)


def read_only_report_out(tmp_path, capsys, monkeypatch):
    from test_hostile_cases import sweep_folder

    from jepa_lit.study.__main__ import main as study_main

    sweep_folder(tmp_path)
    out = read_only(monkeypatch, tmp_path / "report")
    try:
        code = study_main(["report", str(tmp_path / "SWEEP"), "--out", str(out), "--no-plots"])
    finally:
        out.chmod(0o755)
    return f"exit {code}", capsys.readouterr().err


def test_the_sweep_checks_its_output_before_any_run(tmp_path, monkeypatch, capsys):
    from test_sweep import write_spec

    from jepa_lit.study.__main__ import main as study_main

    spec = write_spec(tmp_path)
    out = read_only(monkeypatch, tmp_path / "out" / "full")
    try:
        code = study_main(["sweep", str(spec), "--scale", "full"])
    finally:
        out.chmod(0o755)
    assert code == 2 and f"sweep output {out}/sweep.json: cannot be written" in capsys.readouterr().err
    assert not (out / "ucf101").exists()  # no run started


# ----- 4. the feature cache on a full disk, and the temporary folders of killed runs ---------------------------
def feature_cache_disk_full(tmp_path, capsys, monkeypatch):
    """The disk fills when the features' memory map is made: the documented message, exit 1 (no SIGBUS), and
    no temporary folder left."""
    from test_eval_features import CPU, tiny_data

    from jepa_lit.eval.checkpoint import weights_sha256
    from jepa_lit.eval.features import cache_key, extract_or_load
    from jepa_lit.models.vit import VisionTransformer

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    encoder = VisionTransformer(size="tiny", depth=1, num_frames=4, img_size=32).eval()
    key, description = cache_key(weights_sha256(encoder), {}, "mean", "synthetic", {"crop_size": 32})
    cache = tmp_path / "RUN" / "feature_cache"
    outcome = raised(lambda: extract_or_load(encoder, tiny_data(), cache, key, description, "mean", CPU))
    assert list(cache.iterdir()) == []  # the temporary entry is gone
    return outcome


def test_orphans_of_dead_processes_are_reclaimed_and_live_ones_kept(tmp_path):
    import socket
    import subprocess
    import sys

    from jepa_lit.eval.features import reclaim_orphans

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # a pid that no longer runs (as after kill -9 during extraction)
    host = socket.gethostname()
    dead = tmp_path / f".k1.tmp-{host}-{ended.pid}-0badcafe"
    live = tmp_path / f".k2.tmp-{host}-{os.getpid()}-0badcafe"
    old_style = tmp_path / ".k3.tmp-0badcafe"  # before names held the owner: reclaimed once a day old
    for folder in (dead, live, old_style):
        (folder / "train").mkdir(parents=True)
        (folder / "train" / "features.npy").write_bytes(bytes(1024))
    assert reclaim_orphans(tmp_path) == [dead]
    os.utime(old_style, (1, 1))
    assert reclaim_orphans(tmp_path) == [old_style]
    assert live.is_dir()


ROUND3_CASES = {
    "probe-output-onto-checkpoint": probe_output_onto_checkpoint,
    "sweep-probe-parent-edited": sweep_probe_parent_edited,
    "resume-other-objectives": resume_with_other_objectives,
    "validate-ld-on-baseline": validate_ld_on_baseline,
    "fit-unrelated-checkpoint": fit_unrelated_lightning_checkpoint,
    "sweep-last-deleted": sweep_last_checkpoint_deleted,
    "on-error-raise-zero-frames": on_error_raise_zero_frames,
    "every-training-file-corrupt": every_training_file_corrupt,
    "list-label-out-of-range": list_label_out_of_range,
    "ssv2-labels-wrong-type": ssv2_labels_wrong_json_type,
    "rerun-saved-config": rerun_saved_config,
    "named-version-taken": named_version_taken,
    "two-resumes-at-once": two_resumes_at_once,
    "read-only-runs-folder": read_only_runs_folder,
    "read-only-checkpoints-folder": read_only_checkpoints_folder,
    "read-only-probe-output": read_only_probe_output,
    "read-only-report-out": read_only_report_out,
    "feature-cache-disk-full": feature_cache_disk_full,
    "lr-zero": lr_zero,
    "objective-weight-nan": objective_weight_nan,
    "objective-twice": objective_twice,
    "config-includes-itself": config_includes_itself,
}
