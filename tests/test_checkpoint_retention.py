"""The checkpoint files a run keeps with base.yaml's checkpoint callbacks: last.ckpt and the 2 newest step
checkpoints (each with its integrity record), also across a resume; last.ckpt is a hard link of the newest
step file when both hold the same step."""

import importlib
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from jepa_lit.checkpointing import AtomicCheckpointIO

BASE = Path(__file__).resolve().parents[1] / "experiments" / "base.yaml"


def base_checkpoint_callbacks(dirpath: Path, every_n_train_steps: int) -> list:
    """base.yaml's checkpoint callbacks as configured there, writing into ``dirpath``, with a small period."""
    callbacks = []
    for spec in yaml.safe_load(BASE.read_text())["trainer"]["callbacks"]:
        module_name, _, name = spec["class_path"].rpartition(".")
        if name.endswith("Checkpoint"):
            args = {**spec["init_args"], "dirpath": dirpath}
            if "every_n_train_steps" in args:
                args["every_n_train_steps"] = every_n_train_steps  # 5000 in the config
            callbacks.append(getattr(importlib.import_module(module_name), name)(**args))
    return callbacks


def fit(build, dirpath: Path, max_steps: int, *callbacks, ckpt_path=None) -> None:
    module, data = build()  # 5 batches per epoch (tests/conftest.py's resumable run)
    L.Trainer(max_steps=max_steps, accelerator="cpu", logger=False, enable_progress_bar=False,
              enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
              plugins=[AtomicCheckpointIO()], default_root_dir=dirpath,
              callbacks=[*callbacks, *base_checkpoint_callbacks(dirpath, every_n_train_steps=2)]).fit(
        module, datamodule=data, ckpt_path=ckpt_path)


def kept(dirpath: Path) -> dict[str, int]:
    """Every file in the folder: each checkpoint by its step; each other file must be a checkpoint's record."""
    names = {p.name for p in dirpath.iterdir()}
    checkpoints = {n for n in names if n.endswith(".ckpt")}
    assert names == checkpoints | {f"{n}.sha256.json" for n in checkpoints}, sorted(names)
    return {n: torch.load(dirpath / n, weights_only=False)["global_step"] for n in checkpoints}



@pytest.mark.usefixtures("one_thread")
def test_a_run_keeps_last_and_the_two_newest_step_checkpoints(tmp_path, resumable_run, crash):
    # a 13-step run that crashes before step 9: step checkpoints every 2 steps (2, 4, 6, 8); epoch 1 holds
    # steps 6-10
    with pytest.raises(SystemError, match="simulated crash"):
        fit(resumable_run, tmp_path, 13, crash(8))
    assert kept(tmp_path) == {"last.ckpt": 8, "epoch=1-step=6.ckpt": 6, "epoch=1-step=8.ckpt": 8}
    # written once: last.ckpt is the step file under a second name
    assert (tmp_path / "last.ckpt").stat().st_ino == (tmp_path / "epoch=1-step=8.ckpt").stat().st_ino

    # resumed from last.ckpt into the same folder (as --ckpt_path last and the sweep do), the retention goes
    # on over the first part's files: steps 10 and 12 replace 6 and 8, and last.ckpt holds the final step
    # (a save of its own: no step file at 13)
    fit(resumable_run, tmp_path, 13, ckpt_path=str(tmp_path / "last.ckpt"))
    assert kept(tmp_path) == {"last.ckpt": 13, "epoch=1-step=10.ckpt": 10, "epoch=2-step=12.ckpt": 12}
