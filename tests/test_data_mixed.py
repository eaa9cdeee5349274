"""The mixed regime: mixture proportions, determinism per seed and epoch, DDP shares, the DataModule."""

import logging
import shutil
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from jepa_lit.data.datasets import make_fixture_tree
from jepa_lit.data.mixed import MixedDataModule, MixtureSampler
from jepa_lit.data.transforms import INTERPOLATIONS
from jepa_lit.data.records import LayoutError


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    make_fixture_tree(root)
    return root


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.validation_batches = 0

    def training_step(self, batch, _):
        assert batch["video"].shape[1:] == (3, 4, 32, 32)
        return (self.w * batch["video"].mean()).sum() + self.w.square().sum()

    def validation_step(self, batch, _):
        self.validation_batches += 1

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def trainer(tmp_path, max_epochs=1) -> L.Trainer:
    return L.Trainer(max_epochs=max_epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)


def test_mixture_proportions_over_many_draws():
    sizes = [9537, 168913, 126689]
    sampler = MixtureSampler(sizes, (0.2, 0.6, 0.2), num_samples=60000, seed=0)
    source, index = sampler.draws(0)
    share = np.bincount(source, minlength=3) / len(source)
    np.testing.assert_allclose(share, [0.2, 0.6, 0.2], atol=0.01)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    local = index - offsets[source]
    assert (local >= 0).all() and (local < np.asarray(sizes)[source]).all()
    # uniform within a source: per-sample weight = dataset weight / dataset size
    ucf = local[source == 0]
    assert abs(ucf.mean() / sizes[0] - 0.5) < 0.02


def test_weights_are_normalised_and_zero_weight_never_drawn():
    source, _ = MixtureSampler([10, 10, 10], (1, 0, 3), 4000, seed=1).draws(0)
    assert 1 not in set(source.tolist())
    np.testing.assert_allclose(np.bincount(source, minlength=3) / 4000, [0.25, 0, 0.75], atol=0.03)
    with pytest.raises(ValueError):
        MixtureSampler([10, 0, 10], (1, 1, 1), 100)


def test_deterministic_per_seed_and_epoch():
    def make(seed):
        return MixtureSampler([50, 80, 30], (0.2, 0.6, 0.2), 200, seed=seed)

    a, b = make(3), make(3)
    assert list(a) == list(b)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(a) != list(make(3))  # epoch 1 differs from epoch 0
    assert list(make(4)) != list(make(3))
    fixed = MixtureSampler([50, 80, 30], (0.2, 0.6, 0.2), 200, seed=3, fixed_epoch=0)
    fixed.set_epoch(5)
    assert list(fixed) == list(make(3))


def test_each_rank_draws_its_own_share():
    world, total = 4, 1002
    ranks = [
        MixtureSampler([50, 80, 30], (0.2, 0.6, 0.2), total, seed=0, num_replicas=world, rank=r) for r in range(world)
    ]
    shares = [list(s) for s in ranks]
    assert all(len(s) == len(ranks[0]) == 251 for s in shares)
    _, global_draws = ranks[0].draws(0)
    for r, share in enumerate(shares):
        assert share == global_draws[r::world].tolist()
    # the ranks together are the single-process stream
    interleaved = np.stack(shares, axis=1).reshape(-1)
    assert np.array_equal(interleaved, global_draws)


def test_mixed_datamodule_batches(tree):
    dm = MixedDataModule(
        root=str(tree), num_frames=8, crop_size=32, batch_size=4, num_workers=0, samples_per_epoch=24, val_samples=8
    )
    assert dm.num_classes == 0 and dm.frame_step == 2 and dm.num_frames == 8 and dm.crop_size == 32
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, MixtureSampler) and len(loader) == 6
    batches = list(loader)
    video = torch.cat([b["video"] for b in batches])
    modality = torch.cat([b["modality"] for b in batches])
    index = torch.cat([b["index"] for b in batches])
    assert video.shape == (24, 3, 8, 32, 32)
    assert (torch.cat([b["label"] for b in batches]) == -1).all()
    # images come from the last source (imagenet100) and are static clips
    n_ucf, n_ssv2 = (len(d) for d in dm.train_set.datasets[:2])
    assert torch.equal(modality == 1, index >= n_ucf + n_ssv2)
    for v in video[modality == 1]:
        assert torch.allclose(v, v[:, :1].expand_as(v))
    val = list(dm.val_dataloader())
    assert sum(len(b["index"]) for b in val) == 8
    assert [b["index"].tolist() for b in val] == [b["index"].tolist() for b in dm.val_dataloader()]


def test_mixed_frame_step_two(tree):
    dm = MixedDataModule(
        root=str(tree), num_frames=6, crop_size=32, batch_size=2, num_workers=0, weights=(1.0, 0.0, 0.0), val_samples=0
    )
    dm.setup("fit")
    ucf = dm.train_set.datasets[0]
    assert ucf.clip_sampler.frame_step == 2
    assert dm.val_dataloader() == []


def test_roots_overridable_and_zero_weight_not_read(tree, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    shutil.copytree(tree / "ucf101", tmp_path / "elsewhere" / "my_ucf")
    dm = MixedDataModule(
        root=str(tmp_path / "empty"),
        ucf101_root=str(tmp_path / "elsewhere" / "my_ucf"),
        ssv2_root=str(tree / "ssv2"),
        weights=(0.5, 0.5, 0.0),
        num_workers=0,
        val_samples=0,
    )
    dm.setup("fit")  # imagenet100 has weight 0: its (missing) folder is not read
    assert len(dm.train_set.datasets[0]) == 9


def test_a_leading_zero_weight_source_is_skipped_by_the_draws(tree):
    """A weight-0 source before the others (here UCF-101) holds no index: draws land only in the rest."""
    dm = MixedDataModule(root=str(tree), weights=(0.0, 1.0, 1.0), num_frames=4, crop_size=32, batch_size=4,
                         num_workers=0, samples_per_epoch=8, val_samples=0, seed=0)
    dm.setup("fit")
    assert [len(d) for d in dm.train_set.datasets] == [0, 7, 10]
    batches = list(dm.train_dataloader())
    assert sum(len(b["index"]) for b in batches) == 8
    assert all(b["video"].shape[1:] == (3, 4, 32, 32) for b in batches)
    # the sources' skipped annotation entries are collected (the fixture's SSv2 train.json has one)
    assert [p.where for p in dm.index_problems] == ["train.json[7] id 8"]


def test_sources_keep_the_mixed_pipeline(tree):
    """Each source reads with the mixed settings: frame_step for all, bilinear evaluation for ImageNet-100."""
    dm = MixedDataModule(root=str(tree), num_frames=4, crop_size=32, num_workers=0, val_samples=4, seed=0)
    dm.setup("validate")
    assert [d.name for d in dm.val_set.datasets] == ["ucf101/test", "ssv2/test", "imagenet100/test"]
    assert {d.transform.resize.interpolation for d in dm.val_set.datasets} == {INTERPOLATIONS["bilinear"]}
    dm.setup("fit")
    assert {d.clip_sampler.frame_step for d in dm.train_set.datasets} == {2}


def test_missing_source_shows_both_layouts(tmp_path):
    dm = MixedDataModule(root=str(tmp_path), num_workers=0)
    with pytest.raises(LayoutError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert "UCF-101" in message and "ucfTrainTestlist/" in message and "The mixed regime reads" in message
    assert "imagenet100/" in message


def test_lightning_trainer_runs_on_mixed(tree, tmp_path):
    dm = MixedDataModule(
        root=str(tree), num_frames=4, crop_size=32, batch_size=2, num_workers=0, samples_per_epoch=4, val_samples=2
    )
    fit = trainer(tmp_path, max_epochs=2)
    module = Tiny()
    fit.fit(module, datamodule=dm)
    assert fit.train_dataloader.sampler.epoch == 1  # Lightning called set_epoch
    assert module.validation_batches > 0  # validation on the official evaluation splits


def write_list(path: Path, files) -> str:
    path.write_text("".join(f"{f} {k}\n" for k, f in enumerate(files)))
    return str(path)


@pytest.mark.filterwarnings("ignore:Total length of `list` across ranks is zero")  # no validation batches
def test_list_files_alone_train_without_the_official_files(tree, tmp_path, caplog):
    """Train lists for the three sources, and a root with none of the official files."""
    lists = {
        "ucf101_train_list": write_list(tmp_path / "ucf.txt", sorted((tree / "ucf101").rglob("*_g0[89]_c01.avi"))),
        "ssv2_train_list": write_list(tmp_path / "ssv2.txt", [tree / "ssv2" / "20bn-something-something-v2" / f"{i}.webm"
                                                              for i in (1, 2, 4)]),
        "imagenet100_train_list": write_list(tmp_path / "in100.txt", sorted((tree / "imagenet100" / "train" /
                                                                             "n01749939").glob("*.JPEG"))),
    }
    empty = tmp_path / "no_official_files"
    empty.mkdir()
    args = dict(root=str(empty), num_frames=4, crop_size=32, batch_size=2, num_workers=0, samples_per_epoch=6)
    dm = MixedDataModule(**args, **lists)  # validation on by default (val_samples 512)
    dm.setup("fit")
    assert dm.val_set is None and [len(d) for d in dm.train_set.datasets] == [6, 3, 3]
    batches = list(dm.train_dataloader())
    assert len(batches) == 3 and batches[0]["video"].shape == (2, 3, 4, 32, 32)

    module = Tiny()
    with caplog.at_level(logging.WARNING, logger="jepa_lit.data"):
        fit = trainer(tmp_path)
        fit.fit(module, datamodule=dm)
    assert fit.global_step == 3 and module.validation_batches == 0
    assert "mixed: validation skipped: no evaluation split" in caplog.text and "data.ucf101_test_list" in caplog.text
    with pytest.raises(LayoutError, match=r"The mixed regime reads(.|\n)*data.ucf101_test_list"):
        dm.setup("validate")  # validating on its own needs the evaluation splits

    # with test lists too, the fit validates on them
    test_lists = {"ucf101_test_list": lists["ucf101_train_list"], "ssv2_test_list": lists["ssv2_train_list"],
                  "imagenet100_test_list": lists["imagenet100_train_list"]}
    dm = MixedDataModule(**args, **lists, **test_lists, val_samples=4)
    module = Tiny()
    trainer(tmp_path).fit(module, datamodule=dm)
    assert [len(d) for d in dm.val_set.datasets] == [6, 3, 3] and module.validation_batches > 0


def test_an_unset_seed_follows_the_runs_seed(tree, monkeypatch):
    """seed: None draws the mixture and the clips from seed_everything's seed; a set seed keeps them."""

    def first_batch(**kw):
        dm = MixedDataModule(root=str(tree), num_frames=8, crop_size=32, batch_size=4, num_workers=0,
                             samples_per_epoch=8, val_samples=0, **kw)
        dm.setup("fit")
        return next(iter(dm.train_dataloader()))

    monkeypatch.setenv("PL_GLOBAL_SEED", "1")
    follows_1, fixed_1 = first_batch(), first_batch(seed=7)
    assert torch.equal(follows_1["video"], first_batch(seed=1)["video"])
    monkeypatch.setenv("PL_GLOBAL_SEED", "2")
    assert not torch.equal(follows_1["index"], first_batch()["index"])
    assert torch.equal(fixed_1["video"], first_batch(seed=7)["video"])


def test_uint8_batches_of_videos_and_images_equal_float32_batches(tree, tmp_path):
    """uint8_batches reaches every source: the mixed batches (video clips and static image clips) leave
    the loader as uint8, and normalised after the transfer they are the float32 path's, bit for bit."""
    def datamodule(uint8):
        return MixedDataModule(root=str(tree), num_frames=4, crop_size=32, batch_size=4, num_workers=0,
                               samples_per_epoch=16, val_samples=4, seed=3, uint8_batches=uint8)

    as_float, as_uint8 = datamodule(False), datamodule(True)
    for dm in (as_float, as_uint8):
        dm.setup("fit")
    expected, raw = list(as_float.train_dataloader()), list(as_uint8.train_dataloader())
    modality = torch.cat([b["modality"] for b in raw])
    assert (modality == 0).any() and (modality == 1).any()  # both kinds are in these batches
    assert all(b["video"].dtype == torch.uint8 for b in raw)
    for got, want in zip(raw, expected):
        assert torch.equal(as_uint8.on_after_batch_transfer(got, 0)["video"], want["video"])
        assert torch.equal(got["index"], want["index"])

    class Recorder(Tiny):
        def training_step(self, batch, batch_idx):
            self.seen = getattr(self, "seen", []) + [batch["video"].clone()]
            return super().training_step(batch, batch_idx)

    module = Recorder()
    trainer(tmp_path).fit(module, datamodule=datamodule(True))  # validation batches: float32, passed as they are
    assert module.validation_batches > 0
    assert len(module.seen) == 4 and all(torch.equal(s, e["video"]) for s, e in zip(module.seen, expected))
