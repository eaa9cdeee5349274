"""A run interrupted after k steps and resumed from its checkpoint continues exactly."""

from pathlib import Path

import lightning as L
import pytest
import torch

from jepa_lit.checkpointing import AtomicCheckpointIO
from jepa_lit.data.resumable import EpochSampler


class RecordLosses(L.Callback):
    def __init__(self):
        self.losses = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses[trainer.global_step] = outputs["loss"].item()


def trainer(tmp_path, max_steps, *callbacks):
    return L.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, logger=False, deterministic=True,
                     enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                     num_sanity_val_steps=0, plugins=[AtomicCheckpointIO()], default_root_dir=tmp_path,
                     callbacks=[*callbacks, L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True,
                                                                             every_n_train_steps=1)])


@pytest.mark.slow
@pytest.mark.parametrize("interrupt_at", [3, 5, 6])  # mid-epoch (5 batches per epoch), at its end, in the 2nd
def test_interrupted_and_resumed_run_matches_uninterrupted(tmp_path, interrupt_at, resumable_run, crash):
    total = 9
    straight = RecordLosses()
    module, data = resumable_run()
    trainer(tmp_path / "straight", total, straight).fit(module, datamodule=data)

    first, second = RecordLosses(), RecordLosses()
    module, data = resumable_run()
    with pytest.raises(SystemError, match="simulated crash"):
        trainer(tmp_path / "resumed", total, first, crash(interrupt_at)).fit(module, datamodule=data)
    assert max(first.losses) == interrupt_at
    module, data = resumable_run()
    trainer(tmp_path / "resumed", total, second).fit(module, datamodule=data,
                                                     ckpt_path=str(tmp_path / "resumed" / "last.ckpt"))
    resumed = {**first.losses, **second.losses}
    assert sorted(resumed) == sorted(straight.losses) == list(range(1, total + 1))
    for step in straight.losses:
        assert resumed[step] == pytest.approx(straight.losses[step], abs=1e-6), step


def test_epoch_sampler_shards_and_skips():
    full = list(EpochSampler(10, seed=1))
    assert sorted(full) == list(range(10)) and full == list(EpochSampler(10, seed=1))
    ranks = [list(EpochSampler(10, seed=1, num_replicas=3, rank=r)) for r in range(3)]
    assert all(len(r) == 4 for r in ranks) and set(sum(ranks, [])) == set(range(10))
    sampler = EpochSampler(10, seed=1)
    sampler.set_epoch(1)
    other_epoch = list(sampler)
    assert other_epoch != full
    sampler.resume_at(1, consumed=4)
    assert list(sampler) == other_epoch[4:] and list(sampler) == other_epoch  # skip applies once
    sampler.resume_at(1, consumed=4)
    sampler.set_epoch(2)  # the skip belongs to epoch 1: epoch 2 starts from its beginning
    assert len(list(sampler)) == 10
    sampler.resume_at(1, consumed=10)  # a finished epoch: nothing left to skip in the next
    sampler.set_epoch(2)
    assert len(list(sampler)) == 10


def test_atomic_checkpoint_leaves_no_partial_file(tmp_path):
    io = AtomicCheckpointIO()
    io.save_checkpoint({"a": torch.ones(2)}, tmp_path / "last.ckpt")
    with pytest.raises(Exception):
        io.save_checkpoint({"a": lambda: None}, tmp_path / "last.ckpt")  # cannot be pickled mid-write
    assert torch.equal(torch.load(tmp_path / "last.ckpt")["a"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "last.ckpt.sha256.json"]  # and its record


def test_mixture_sampler_skips_once_for_resume():
    from jepa_lit.data.mixed import MixtureSampler

    sampler = MixtureSampler([5, 7, 3], [0.2, 0.6, 0.2], num_samples=12, seed=1, num_replicas=2, rank=1)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.resume_at(2, consumed=2)
    assert list(sampler) == full[2:] and list(sampler) == full


def test_real_dataset_clips_and_crops_resume_exactly(tmp_path):
    """The UCF-101 train loader draws clip windows and crops from (seed, epoch, position), not from the
    worker's global generator: a loader resumed after one batch yields what the full epoch yields next."""
    from jepa_lit.data.fixtures import make_ucf101
    from jepa_lit.data.ucf101 import UCF101DataModule

    make_ucf101(tmp_path / "ucf101", broken=False)

    def loader():
        data = UCF101DataModule(root=str(tmp_path / "ucf101"), num_frames=4, crop_size=32, batch_size=2,
                                num_workers=0, seed=5)
        data.setup("fit")
        return data.train_dataloader()

    torch.manual_seed(0)
    full = [batch["video"] for batch in loader()]
    torch.manual_seed(123)  # a resumed process has another global RNG state
    resumed = loader()
    resumed.load_state_dict({"epoch": 0, "batches": 1, "batch_size": 2})
    rest = [batch["video"] for batch in resumed]
    assert len(full) >= 2 and len(rest) == len(full) - 1
    assert all(torch.equal(a, b) for a, b in zip(full[1:], rest))


@pytest.mark.slow
def test_run_checkpoint_keeps_the_final_step(tmp_path, resumable_run):
    from jepa_lit.checkpointing import RunCheckpoint

    module, data = resumable_run()
    checkpoint = RunCheckpoint(dirpath=tmp_path, save_last=True, every_n_train_steps=2)
    L.Trainer(max_steps=3, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
              limit_val_batches=0, num_sanity_val_steps=0, callbacks=[checkpoint]).fit(module, datamodule=data)
    assert torch.load(tmp_path / "last.ckpt", weights_only=False)["global_step"] == 3


@pytest.mark.slow
def test_base_config_checkpoints_every_n_steps_and_at_each_epoch_end(tmp_path, resumable_run):
    """base.yaml's checkpoint callback, as configured there: periodic steps (the 2 newest kept, and
    last.ckpt); and EpochEndCheckpoint, the latest epoch end (5 batches per epoch here; base.yaml no longer
    saves at epoch ends, docs/performance.md, but a config may)."""
    import importlib

    import yaml

    from jepa_lit.checkpointing import EpochEndCheckpoint

    callbacks = yaml.safe_load((Path(__file__).parents[1] / "experiments" / "base.yaml").read_text())["trainer"]["callbacks"]
    checkpoints = []
    for spec in callbacks:
        module_name, _, name = spec["class_path"].rpartition(".")
        if name.endswith("Checkpoint"):
            args = {**spec["init_args"], "dirpath": tmp_path}
            if "every_n_train_steps" in args:
                args["every_n_train_steps"] = 4  # 5000 in the config
            checkpoints.append(getattr(importlib.import_module(module_name), name)(**args))
    assert len(checkpoints) == 1
    checkpoints.append(EpochEndCheckpoint(dirpath=tmp_path, filename="epoch{epoch:04d}", auto_insert_metric_name=False,
                                          every_n_epochs=1, save_top_k=1))
    module, data = resumable_run()
    L.Trainer(max_steps=13, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
              limit_val_batches=0, num_sanity_val_steps=0, callbacks=checkpoints).fit(module, datamodule=data)
    names = sorted(p.name for p in tmp_path.glob("*.ckpt"))
    step = {name: torch.load(tmp_path / name, weights_only=False)["global_step"] for name in names}
    assert [step[n] for n in names if "-step=" in n] == [8, 12] and step["last.ckpt"] == 13  # the 2 newest
    # the latest epoch end only: epochs 0 and 1 ended at steps 5 and 10; the run stops in epoch 2 at 13
    assert [n for n in names if n.startswith("epoch0")] == ["epoch0001.ckpt"] and step["epoch0001.ckpt"] == 10

    # resuming from the epoch end continues exactly as the run did
    straight, resumed = RecordLosses(), RecordLosses()
    module, data = resumable_run()
    trainer(tmp_path / "straight", 13, straight).fit(module, datamodule=data)
    module, data = resumable_run()
    trainer(tmp_path / "resumed", 13, resumed).fit(module, datamodule=data, ckpt_path=str(tmp_path / "epoch0001.ckpt"))
    assert sorted(resumed.losses) == [11, 12, 13]
    for step_number, loss in resumed.losses.items():
        assert loss == pytest.approx(straight.losses[step_number], abs=1e-6), step_number
