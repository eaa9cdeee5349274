"""Integrity of the files jepa-lit writes: atomic writes with a size + SHA-256 record checked on read,
checkpoints that are damaged named with the intact one beside them, export that never overwrites what it
reads, a full disk named as such, normal file modes (the hostile cases of docs/checkpoints.md)."""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
from pathlib import Path

import pytest
import torch

from jepa_lit import atomic
from jepa_lit.atomic import WriteError, integrity_problem, sidecar_path, write_json
from jepa_lit.checkpointing import AtomicCheckpointIO
from jepa_lit.checkpointing.integrity import CorruptCheckpointError, check_checkpoint, load_checkpoint_file
from jepa_lit.cli import main
from jepa_lit.models.vit import VisionTransformer


def tiny_checkpoint() -> dict:
    from jepa_lit.module import JEPAModule

    module = JEPAModule(VisionTransformer(size="tiny", depth=1, img_size=32, num_frames=4),
                        predictor_width=32, predictor_depth=1, predictor_heads=2)
    checkpoint = {"state_dict": module.state_dict(), "epoch": 0, "global_step": 5}
    module.on_save_checkpoint(checkpoint)
    return checkpoint


@pytest.fixture(scope="module")
def checkpoint() -> dict:
    return tiny_checkpoint()


def run_main(capsys, argv: list[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code, capsys.readouterr().err


# ----- export --------------------------------------------------------------------------------------
def test_export_refuses_its_own_checkpoint_and_an_existing_file(tmp_path, capsys, checkpoint):
    ckpt = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(checkpoint, ckpt)
    before = ckpt.read_bytes()
    os.link(ckpt, tmp_path / "hardlink.pt")
    for target, flags in [(ckpt, []), (ckpt, ["--overwrite"]), (tmp_path / "hardlink.pt", ["--overwrite"]),
                          (tmp_path / "." / "last.ckpt", ["--overwrite"])]:
        code, err = run_main(capsys, ["export", str(ckpt), str(target), *flags])
        assert code == 2 and "is the checkpoint being exported" in err, (target, flags, err)
        assert "Traceback" not in err
    assert ckpt.read_bytes() == before and check_checkpoint(ckpt) is None

    out = tmp_path / "vjepa.pt"
    out.write_bytes(b"an earlier export")
    code, err = run_main(capsys, ["export", str(ckpt), str(out)])
    assert code == 2 and f"{out} already exists; pass --overwrite" in err
    assert out.read_bytes() == b"an earlier export"
    code, _ = run_main(capsys, ["export", str(ckpt), str(out), "--overwrite"])
    assert code == 0 and integrity_problem(out) is None and sidecar_path(out).is_file()
    assert set(torch.load(out, weights_only=False)) >= {"encoder", "target_encoder"}


# ----- checkpoints ---------------------------------------------------------------------------------
def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "corrupted mid-file":
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 64]) + data[middle + 64:])
    elif how == "zeroed":
        path.write_bytes(bytes(len(data)))
    elif how == "not a checkpoint":
        path.write_text("these are my notes\n")
        sidecar_path(path).unlink()
    elif how == "truncated, no record":
        path.write_bytes(data[: len(data) // 2])
        sidecar_path(path).unlink()
    else:
        raise AssertionError(how)


DAMAGE = {  # how -> what the message says is wrong
    "truncated": "bytes, its integrity record last.ckpt.sha256.json says",
    "corrupted mid-file": "its content hash differs from its integrity record",
    "zeroed": "its content hash differs from its integrity record",
    "not a checkpoint": "it is not a checkpoint",
    "truncated, no record": "it is a zip archive without its end (truncated)",
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_checkpoint_names_itself_and_the_intact_one(tmp_path, checkpoint, how):
    folder = tmp_path / "checkpoints"
    io = AtomicCheckpointIO()
    io.save_checkpoint(checkpoint, folder / "step=5.ckpt")
    os.utime(folder / "step=5.ckpt", (1, 1))  # older than last.ckpt
    io.save_checkpoint(checkpoint, folder / "last.ckpt")
    damage(folder / "last.ckpt", how)
    with pytest.raises(CorruptCheckpointError) as info:
        load_checkpoint_file(folder / "last.ckpt", weights_only=False)
    message = str(info.value)
    assert message.startswith(f"{folder / 'last.ckpt'}: cannot be used as a checkpoint: ") and DAMAGE[how] in message
    assert f"the newest intact checkpoint in the same folder is {folder / 'step=5.ckpt'}" in message
    with pytest.raises(CorruptCheckpointError):  # Lightning's load path checks too
        io.load_checkpoint(folder / "last.ckpt")
    assert io.load_checkpoint(folder / "step=5.ckpt")["global_step"] == 5


def test_a_checkpoint_damaged_without_an_intact_one_says_so(tmp_path, checkpoint):
    AtomicCheckpointIO().save_checkpoint(checkpoint, tmp_path / "last.ckpt")
    damage(tmp_path / "last.ckpt", "truncated")
    with pytest.raises(CorruptCheckpointError, match=f"no intact checkpoint is left in {tmp_path}"):
        check_checkpoint(tmp_path / "last.ckpt")


def test_removing_a_checkpoint_removes_its_record(tmp_path, checkpoint):
    io = AtomicCheckpointIO()
    io.save_checkpoint({"x": torch.ones(2)}, tmp_path / "step=1.ckpt")
    io.remove_checkpoint(tmp_path / "step=1.ckpt")
    assert list(tmp_path.iterdir()) == []


# ----- writes --------------------------------------------------------------------------------------
def test_files_are_written_with_the_umask_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        AtomicCheckpointIO().save_checkpoint({"x": torch.ones(2)}, tmp_path / "last.ckpt")
        write_json(tmp_path / "results.json", {"top1": 1.0})
    finally:
        os.umask(old)
    for name in ("last.ckpt", "last.ckpt.sha256.json", "results.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "last.ckpt.sha256.json", "results.json"]


@pytest.mark.parametrize("target", ["checkpoint", "json"])
def test_a_full_disk_keeps_the_old_file_and_says_no_space_left(tmp_path, monkeypatch, target):
    path = tmp_path / ("last.ckpt" if target == "checkpoint" else "results.json")
    write = (lambda value: AtomicCheckpointIO().save_checkpoint({"x": value}, path)) if target == "checkpoint" \
        else (lambda value: write_json(path, {"x": value}))
    write(1)
    before = path.read_bytes()

    def disk_full(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.HashingWriter, "write", disk_full)
    with pytest.raises(WriteError) as info:
        write(2)
    assert str(info.value).startswith(f"{path}: no space left on device")
    assert path.read_bytes() == before and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    if target == "checkpoint":
        assert integrity_problem(path) is None


class HalfWriteThenFull:
    """A file whose first write stores half of its bytes and then fails as a full disk does."""

    def __init__(self, file):
        self.file = file

    def write(self, data):
        self.file.write(data[: len(data) // 2])
        self.file.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def test_json_is_replaced_whole(tmp_path, monkeypatch):
    """A write that dies half way (a full disk, a kill) leaves the previous file whole, whatever way the
    writer opens its file; an in-place writer would leave half a JSON document."""
    path = tmp_path / "r.json"
    write_json(path, {"a": 1, "b": list(range(100))})
    with monkeypatch.context() as patch:
        for module, name in ((builtins, "open"), (io, "open"), (os, "fdopen")):
            opener = getattr(module, name)
            patch.setattr(module, name, lambda *args, _open=opener, **kw: HalfWriteThenFull(_open(*args, **kw)))
        with pytest.raises((OSError, WriteError), match="No space left|no space left"):
            write_json(path, {"a": 2, "b": list(range(200))})
    assert json.loads(path.read_text()) == {"a": 1, "b": list(range(100))}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no half-written temporary left behind
    write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}


def test_ckpt_path_last_resumes_from_the_newest_intact_checkpoint(tmp_path, checkpoint):
    from jsonargparse import Namespace

    from jepa_lit.cli.fit import resolve_last_checkpoint
    from jepa_lit.errors import CheckpointError

    folder = tmp_path / "smoke" / "version_0" / "checkpoints"
    io = AtomicCheckpointIO()
    for name, mtime in (("step=2.ckpt", 1), ("step=4.ckpt", 2), ("last.ckpt", None)):
        io.save_checkpoint(checkpoint, folder / name)
        if mtime is not None:
            os.utime(folder / name, (mtime, mtime))
    damage(folder / "step=4.ckpt", "corrupted mid-file")
    damage(folder / "last.ckpt", "truncated")

    def config():
        logger = Namespace(init_args=Namespace(save_dir=str(tmp_path), name="smoke", version=None))
        return Namespace(trainer=Namespace(logger=logger), ckpt_path="last")

    resolved = config()
    with pytest.warns(UserWarning, match=r"last.ckpt is damaged \(it has \d+ bytes.*resuming from .*step=2.ckpt"):
        resolve_last_checkpoint(resolved)
    assert resolved.ckpt_path == str(folder / "step=2.ckpt")
    assert resolved.trainer.logger.init_args.version == "version_0"

    damage(folder / "step=2.ckpt", "zeroed")
    with pytest.raises(CheckpointError, match="no intact checkpoint is left"):
        resolve_last_checkpoint(config())


def test_ckpt_path_last_reads_the_sweeps_fixed_run_folder(tmp_path, checkpoint):
    from jsonargparse import Namespace

    from jepa_lit.cli.fit import resolve_last_checkpoint
    from jepa_lit.errors import CheckpointError

    io = AtomicCheckpointIO()
    io.save_checkpoint(checkpoint, tmp_path / "baseline" / "version_0" / "checkpoints" / "last.ckpt")  # another run
    folder = tmp_path / "baseline" / "seed_1" / "checkpoints"  # the sweep's logger: save_dir/<variant>/seed_<S>
    io.save_checkpoint(checkpoint, folder / "step=2.ckpt")
    os.utime(folder / "step=2.ckpt", (1, 1))
    io.save_checkpoint(checkpoint, folder / "last.ckpt")

    def config(version):
        logger = Namespace(init_args=Namespace(save_dir=str(tmp_path), name="baseline", version=version))
        return Namespace(trainer=Namespace(logger=logger), ckpt_path="last")

    resolved = config("seed_1")
    resolve_last_checkpoint(resolved)
    assert resolved.ckpt_path == str(folder / "last.ckpt") and resolved.trainer.logger.init_args.version == "seed_1"
    damage(folder / "last.ckpt", "truncated")
    resolved = config("seed_1")
    with pytest.warns(UserWarning, match=r"last.ckpt is damaged .*resuming from .*seed_1/checkpoints/step=2.ckpt"):
        resolve_last_checkpoint(resolved)
    assert resolved.ckpt_path == str(folder / "step=2.ckpt")
    with pytest.raises(CheckpointError, match=r"no .*baseline/seed_2/checkpoints/last.ckpt to resume from"):
        resolve_last_checkpoint(config("seed_2"))


# ----- settings recorded in checkpoints ---------------------------------------------------------------
@pytest.mark.parametrize("frames, crop, refused", [
    (8, 32, []),
    (16, 32, ["data.num_frames: 8 -> 16"]),
    (8, 64, ["data.crop_size: 32 -> 64"]),
])
def test_resuming_with_other_clip_settings_is_refused_with_the_keys(frames, crop, refused):
    from types import SimpleNamespace

    from jepa_lit.errors import CheckpointError
    from jepa_lit.module import JEPAModule

    def module(num_frames, crop_size, fn="fit"):
        m = JEPAModule(VisionTransformer(size="tiny", depth=1, img_size=32, num_frames=4),
                       predictor_width=32, predictor_depth=1, predictor_heads=2)
        m._trainer = SimpleNamespace(datamodule=SimpleNamespace(num_frames=num_frames, crop_size=crop_size),
                                     state=SimpleNamespace(fn=fn))
        return m

    saved = {}
    module(8, 32).on_save_checkpoint(saved)
    assert saved["jepa_lit"]["data"] == {"num_frames": 8, "crop_size": 32}
    resumed = module(frames, crop)
    if not refused:
        resumed.on_load_checkpoint(saved)
        return
    with pytest.raises(CheckpointError) as info:
        resumed.on_load_checkpoint(saved)
    assert all(key in str(info.value) for key in refused)
    module(frames, crop, fn="validate").on_load_checkpoint(saved)  # only a resumed fit is refused

    other = {"jepa_lit": {**saved["jepa_lit"], "encoder_config": {**saved["jepa_lit"]["encoder_config"], "depth": 2}}}
    with pytest.raises(CheckpointError, match="model.encoder.depth: 2 -> 1"):
        module(8, 32).on_load_checkpoint(other)


# ----- results JSON ----------------------------------------------------------------------------------
def test_results_json_carries_a_record_checked_by_the_results_command(tmp_path, capsys):
    from jepa_lit.eval.results import main as results_main
    from jepa_lit.eval.results import write_results
    from jepa_lit.study.registry import RegistryError, read_results

    results = {"schema": "jepa_lit.probe_result/1", "benchmark": "synthetic", "comparison_key": "0123",
               "metrics": {"top1": 12.5}, "training": {"epochs": 2}}
    path = write_results(results, str(tmp_path / "r.json"))
    assert sidecar_path(path).is_file() and read_results(path).top1 == 12.5
    path.write_text(path.read_text().replace("12.5", "92.5"))  # same size, other bytes
    assert results_main([str(path), str(sidecar_path(path))]) == 2  # RUN/probes/*.json: the record is left out
    err = capsys.readouterr().err
    assert f"{path}: damaged: its content hash differs from its integrity record r.json.sha256.json" in err
    assert "rerun the probe (jepa-lit test --probe" in err
    with pytest.raises(RegistryError, match="damaged: its content hash differs.*rerun the sweep to probe again"):
        read_results(path)  # the sweep's and the report's reader


# ----- probing at other clip settings ------------------------------------------------------------------
@pytest.mark.parametrize("frames, crop, changes", [
    (8, 32, []),
    (16, 32, ["data.num_frames: 8 -> 16"]),
    (16, 64, ["data.crop_size: 32 -> 64", "data.num_frames: 8 -> 16"]),
])
def test_probing_at_other_clip_settings_warns_once_naming_the_keys(tmp_path, checkpoint, frames, crop, changes):
    import warnings
    from types import SimpleNamespace

    from jepa_lit.eval.checkpoint import load_eval_encoder, warn_probe_clip_changes

    saved = {**checkpoint, "jepa_lit": {**checkpoint["jepa_lit"], "data": {"num_frames": 8, "crop_size": 32}}}
    AtomicCheckpointIO().save_checkpoint(saved, tmp_path / "last.ckpt")
    frozen = load_eval_encoder(str(tmp_path / "last.ckpt"))
    assert frozen.trained_data == {"num_frames": 8, "crop_size": 32}
    datamodule = SimpleNamespace(num_frames=frames, crop_size=crop)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recorded = warn_probe_clip_changes(frozen, datamodule)  # what evaluate_checkpoint puts in the results
    assert len(caught) == len(recorded) == (1 if changes else 0)
    if changes:
        assert str(caught[0].message) == recorded[0] and "; ".join(changes) in recorded[0]
    control = load_eval_encoder(str(tmp_path / "last.ckpt"), random_init=True)
    assert warn_probe_clip_changes(control, datamodule) == []  # the untrained control was trained at nothing


# ----- export: encoders and predictor, in the official layout ------------------------------------------
def test_export_writes_the_predictor_in_the_official_layout(tmp_path, capsys):
    from jepa_lit.models.official import OFFICIAL_MASK_TOKENS, load_official_predictor
    from jepa_lit.module import JEPAModule

    def module():
        return JEPAModule(VisionTransformer(size="tiny", depth=1, img_size=32, num_frames=4),
                          predictor_width=32, predictor_depth=1, predictor_heads=2)

    trained = module()
    with torch.no_grad():
        for token in trained.predictor.mask_tokens:
            token.normal_()
    saved = {"state_dict": trained.state_dict(), "epoch": 0, "global_step": 5}
    trained.on_save_checkpoint(saved)
    AtomicCheckpointIO().save_checkpoint(saved, tmp_path / "last.ckpt")
    code, _ = run_main(capsys, ["export", str(tmp_path / "last.ckpt"), str(tmp_path / "vjepa.pt")])
    assert code == 0
    exported = torch.load(tmp_path / "vjepa.pt", weights_only=False)
    assert {"encoder", "target_encoder", "predictor"} <= set(exported)
    predictor = exported["predictor"]
    assert all(k.startswith("module.backbone.") for k in predictor)
    assert {f"module.backbone.mask_tokens.{i}" for i in range(OFFICIAL_MASK_TOKENS)} <= set(predictor)
    assert set(predictor) - {f"module.backbone.mask_tokens.{i}" for i in range(OFFICIAL_MASK_TOKENS)} == {
        "module.backbone." + k for k in trained.predictor.state_dict() if not k.startswith("mask_tokens.")}
    fresh = module()
    load_official_predictor(fresh.predictor, str(tmp_path / "vjepa.pt"))
    for key, value in trained.predictor.state_dict().items():
        assert torch.equal(fresh.predictor.state_dict()[key], value), key
