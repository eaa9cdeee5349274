"""The four datasets on format-exact fixture trees: indexing, labels, samples, determinism, bad input."""

import inspect
import logging
import shutil
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from jepa_lit.data import clip_dataset
from jepa_lit.data.clip_dataset import ClipDataset
from jepa_lit.data.clip_sampling import UniformClipSampler
from jepa_lit.data.datamodule import ClipDataModule
from jepa_lit.data.decode import BadInputError
from jepa_lit.data.diving48 import index_diving48
from jepa_lit.data.datasets import DATASETS, make_fixture_tree
from jepa_lit.data.fixtures import write_jpeg, write_video
from jepa_lit.data.imagenet100 import index_imagenet100, read_class_list
from jepa_lit.data.records import IMAGE, LayoutError, Record, read_list_file
from jepa_lit.data.ssv2 import index_ssv2
from jepa_lit.data.transforms import IMAGENET_MEAN, IMAGENET_STD, VideoEvalTransform
from jepa_lit.data.ucf101 import UCF101DataModule, index_ucf101

MODULES = {name: spec.datamodule for name, spec in DATASETS.items()}  # every registered dataset


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_fixture_tree(tmp_path_factory.mktemp("data"))


def small(name, tree, **kw):
    args = dict(root=tree[name]["root"], num_frames=8, crop_size=32, batch_size=4, num_workers=0)
    return MODULES[name](**{**args, **kw})


def red_index(video: torch.Tensor) -> np.ndarray:
    """Per-frame index t from a normalised fixture clip (red level 20 + 6 t; eval crops keep it)."""
    red = video[0].mean(dim=(-1, -2)) * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    return ((red * 255 - 20) / 6).numpy()


# --- indexing -----------------------------------------------------------------------------------
def test_ucf101_index_labels_and_handstand_quirk(tree):
    root = tree["ucf101"]["root"]
    train, problems = index_ucf101(root, 1, "train")
    test, _ = index_ucf101(root, 1, "test")
    assert not problems and len(train) == tree["ucf101"]["train_records"] and len(test) == 3
    labels = {Path(r.path).parent.name: r.label for r in train + test}
    assert labels == {"ApplyEyeMakeup": 0, "HandstandPushups": 36, "YoYo": 100}
    hand = [r for r in test if r.label == 36][0]
    assert Path(hand.path).name.startswith("v_HandStandPushups_") and Path(hand.path).is_file()


def test_ucf101_case_insensitive_classes(tree, tmp_path):
    root = tmp_path / "ucf"
    shutil.copytree(tree["ucf101"]["root"], root)
    lists = root / "ucfTrainTestlist"
    # a list that spells the folder as the file names do: still class 37, still the file on disk
    (lists / "testlist01.txt").write_text("HandStandPushups/v_HandStandPushups_g01_c01.avi\nyoyo/v_YoYo_g01_c01.avi\n")
    test, problems = index_ucf101(str(root), 1, "test")
    assert not problems and [r.label for r in test] == [36, 100]
    assert all(Path(r.path).is_file() for r in test)
    (lists / "testlist01.txt").write_text("Juggling/v_Juggling_g01_c01.avi\n")
    _, problems = index_ucf101(str(root), 1, "test")
    assert "unknown class" in problems[0].reason and "testlist01.txt:1" in problems[0].where


def test_ssv2_index_strips_brackets_and_flags_unknown_template(tree):
    root = tree["ssv2"]["root"]
    train, problems = index_ssv2(root, "train")
    assert len(train) == tree["ssv2"]["train_records"]
    assert [r.label for r in train[:4]] == [0, 60, 120, 173]
    assert len(problems) == 1 and "unknown template" in problems[0].reason and "train.json[7]" in problems[0].where
    test, _ = index_ssv2(root, "test")
    assert Path(test[0].path).name == "101.webm"


def test_ssv2_old_20bn_file_names(tree, tmp_path):
    root = tmp_path / "ssv2"
    shutil.copytree(tree["ssv2"]["root"], root)
    for kind in ("labels", "train", "validation"):
        (root / "labels" / f"{kind}.json").rename(root / f"something-something-v2-{kind}.json")
    assert len(index_ssv2(str(root), "test")[0]) == tree["ssv2"]["test_records"]


def test_imagenet100_class_list_and_label_order(tree):
    wnids = read_class_list()
    assert len(wnids) == 100 and len(set(wnids)) == 100
    assert wnids[:3] == ["n02869837", "n01749939", "n02488291"] and wnids[-1] == "n02090622"
    train, missing = index_imagenet100(tree["imagenet100"]["root"], "train")
    assert len(missing) == 97 and all(r.modality == IMAGE for r in train)
    assert sorted({r.label for r in train}) == [0, 1, 99]
    assert not any("n15075141" in r.path for r in train)  # a folder outside the list is ignored
    assert len(train) == tree["imagenet100"]["train_records"]


def test_diving48_index_ranges_and_unknown_label(tree):
    root = tree["diving48"]["root"]
    train, problems = index_diving48(root, "train")
    assert not problems and (train[0].start_frame, train[0].end_frame) == (5, 25)
    assert [r.label for r in train[:3]] == [0, 7, 47]
    test, problems = index_diving48(root, "test")
    assert len(problems) == 1 and "unknown label 48" in problems[0].reason


def test_list_file_reader(tmp_path):
    (tmp_path / "a b.mp4").write_bytes(b"")
    (tmp_path / "list.txt").write_text("a b.mp4 3\n/abs/x.JPEG 0\n\n")
    records = read_list_file(tmp_path / "list.txt")
    assert records[0] == Record(str(tmp_path / "a b.mp4"), 3)
    assert records[1].modality == IMAGE and records[1].path == "/abs/x.JPEG"
    (tmp_path / "bad.txt").write_text("x.mp4 cat\n")
    with pytest.raises(ValueError, match=r"bad.txt:1.*<path> <integer label>"):
        read_list_file(tmp_path / "bad.txt")


@pytest.mark.parametrize("name", list(MODULES))
def test_missing_root_shows_expected_layout(name, tmp_path):
    dm = MODULES[name](root=str(tmp_path / "nowhere"), num_workers=0)
    with pytest.raises(LayoutError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert "root folder not found" in message and "Expected layout" in message and "└──" in message
    assert "Or give a V-JEPA style list file instead: data.train_list" in message  # the other way in


def test_wrong_layout_names_missing_file(tree, tmp_path):
    root = tmp_path / "ucf"
    shutil.copytree(tree["ucf101"]["root"], root)
    (root / "ucfTrainTestlist" / "classInd.txt").unlink()
    with pytest.raises(LayoutError, match="classInd.txt") as info:
        UCF101DataModule(root=str(root)).setup("fit")
    assert "ucfTrainTestlist/" in str(info.value)


class TinyModule(L.LightningModule):
    """The least a Trainer needs to fit and validate on a DataModule's clips."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.validation_batches = 0

    def training_step(self, batch, _):
        return (self.w * batch["video"].mean()).sum() + self.w.square().sum()

    def validation_step(self, batch, _):
        self.validation_batches += 1

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit_one_epoch(module, datamodule, tmp_path):
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=datamodule)
    return trainer


@pytest.mark.filterwarnings("ignore:Total length of `list` across ranks is zero")  # no validation batches
def test_list_files_alone_train_without_the_official_files(tree, tmp_path, caplog):
    videos = sorted((Path(tree["ucf101"]["root"]) / "UCF-101").rglob("*_g0[89]_c01.avi"))  # the 6 good train videos
    train_list = tmp_path / "train.txt"
    train_list.write_text("".join(f"{v} {k % 3}\n" for k, v in enumerate(videos)))
    no_official = tmp_path / "no_official_files"  # does not exist: no annotations, no class folders
    dm = UCF101DataModule(root=str(no_official), train_list=str(train_list), num_frames=8, crop_size=32,
                          batch_size=2, num_workers=0)
    dm.setup("fit")
    assert dm.eval_set is None  # a fit reads the evaluation split only when it validates
    batches = list(dm.train_dataloader())
    assert len(batches) == 3 and batches[0]["video"].shape == (2, 3, 8, 32, 32)
    assert sorted(label for b in batches for label in b["label"].tolist()) == [0, 0, 1, 1, 2, 2]  # the list's labels

    # a fit that validates finds no evaluation split: it says so and trains without validation
    module = TinyModule()
    with caplog.at_level(logging.WARNING, logger="jepa_lit.data"):
        trainer = fit_one_epoch(module, dm, tmp_path)
    assert trainer.global_step == 3 and module.validation_batches == 0
    assert "ucf101: validation skipped: no evaluation split" in caplog.text and "root folder not found" in caplog.text
    # validating or testing needs one: the error names the root and the list-file alternative
    with pytest.raises(LayoutError, match=r"root folder not found(.|\n)*data.test_list"):
        dm.setup("test")

    # with a test list too, the fit validates on it
    test_list = tmp_path / "test.txt"
    test_list.write_text(f"{videos[0]} 0\n{videos[1]} 1\n")
    dm = UCF101DataModule(root=str(no_official), train_list=str(train_list), test_list=str(test_list),
                          num_frames=8, crop_size=32, batch_size=2, num_workers=0)
    module = TinyModule()
    fit_one_epoch(module, dm, tmp_path)
    assert len(dm.eval_set) == 2 and module.validation_batches > 0


# --- samples ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(MODULES))
def test_datamodule_batches(name, tree, caplog):
    dm = small(name, tree)
    assert (dm.num_frames, dm.crop_size, dm.batch_size, dm.num_workers) == (8, 32, 4, 0)
    assert dm.num_classes == tree[name]["num_classes"]
    dm.setup("fit")
    with caplog.at_level(logging.WARNING, logger="jepa_lit.data"):
        batches = list(dm.train_dataloader())
        test = list(dm.test_dataloader())
    batch = batches[0]
    assert set(batch) == {"video", "label", "modality", "index"}
    assert batch["video"].shape == (4, 3, 8, 32, 32) and batch["video"].dtype == torch.float32
    modality = 1 if name == "imagenet100" else 0
    assert (batch["modality"] == modality).all()
    assert ((batch["label"] >= 0) & (batch["label"] < dm.num_classes)).all()
    assert sum(len(b["index"]) for b in test) == tree[name]["test_records"]
    # every broken file that was drawn was skipped, counted and named in the log
    bad = dm.train_set.bad_files | dm.eval_set.bad_files
    for path in bad:
        assert path in caplog.text
    assert dm.train_set.num_bad >= len(dm.train_set.bad_files)


def test_labels_match_files(tree):
    dm = small("ucf101", tree)
    dm.setup("fit")
    for i, record in enumerate(dm.train_set.records[:6]):
        sample = dm.train_set[i]
        assert sample["label"] == record.label and sample["index"] == i


def test_train_samples_deterministic_per_seed(tree):
    def draw(seed):
        dm = small("ssv2", tree)
        dm.setup("fit")
        torch.manual_seed(seed)
        return [dm.train_set[i]["video"] for i in range(4)]

    a, b, c = draw(1), draw(1), draw(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def test_eval_clip_frames_spread_over_whole_video(tree):
    dm = small("diving48", tree, num_frames=6)
    dm.setup("test")
    sample = dm.eval_set[0]  # 36 frames: uniform 0, 7, 14, 21, 28, 35
    np.testing.assert_allclose(red_index(sample["video"]), [0, 7, 14, 21, 28, 35], atol=0.6)


def test_frame_range_is_respected(tree):
    dm = small("diving48", tree, num_frames=6, train_sampling="uniform", train_augment=False)
    dm.setup("fit")
    idx = red_index(dm.train_set[0]["video"])  # annotated range [5, 25)
    assert idx.min() > 4.4 and idx.max() < 24.6


def test_short_video_repeats_last_frame(tree):
    dm = small("ssv2", tree, num_frames=16, frame_step=1, train_augment=False)
    dm.setup("fit")
    short = [i for i, r in enumerate(dm.train_set.records) if r.path.endswith("/3.webm")][0]  # 10 frames
    idx = red_index(dm.train_set[short]["video"])
    np.testing.assert_allclose(idx, list(range(10)) + [9] * 6, atol=0.6)


def test_eval_segments_and_views(tree):
    dm = small("ucf101", tree, eval_num_segments=2, eval_num_views=3)
    dm.setup("test")
    assert dm.eval_set[0]["video"].shape == (6, 3, 8, 32, 32)


def test_header_that_over_counts_a_little_resampled_within_real_length(tmp_path, monkeypatch, caplog):
    path = write_video(tmp_path / "v.mp4", 24, fps=25)
    # 28 announced, 24 decoded: a header a little off, not a truncated file (24 >= 0.9 * 28 - 2)
    monkeypatch.setattr(clip_dataset, "estimated_frame_count", lambda container: 28)
    ds = ClipDataset([Record(str(path), 0)], UniformClipSampler(8), VideoEvalTransform(32), 8, on_error="raise")
    with caplog.at_level(logging.WARNING, logger="jepa_lit.data"):
        for _ in range(2):
            idx = red_index(ds[0]["video"])  # spread over the 24 real frames, not a frozen tail
            # the release's eval indices: linspace truncated (UniformClipSampler's default)
            np.testing.assert_allclose(idx, np.linspace(0, 23, 8).astype(int), atol=0.6)
    assert ds._lengths[0] == 24 and ds.num_bad == 0
    assert caplog.text.count("header / duration announces 28") == 1  # told once per file


def test_clearly_truncated_video_is_a_bad_sample(tmp_path, monkeypatch):
    path = write_video(tmp_path / "v.mp4", 24, fps=25)
    monkeypatch.setattr(clip_dataset, "estimated_frame_count", lambda container: 400)  # 24 of 400: data check's rule says truncated
    ds = ClipDataset([Record(str(path), 0)], UniformClipSampler(8), VideoEvalTransform(32), 8, on_error="raise")
    with pytest.raises(BadInputError, match="v.mp4: truncated: decoded 24 of 400 announced frames"):
        ds[0]


# --- bad input ----------------------------------------------------------------------------------
def test_bad_sample_skipped_counted_logged(tree, caplog):
    dm = small("ucf101", tree)
    dm.setup("fit")
    ds = dm.train_set
    paths = [r.path for r in ds.records]
    zero = [i for i, p in enumerate(paths) if p.endswith("v_YoYo_g10_c01.avi")][0]
    missing = [i for i, p in enumerate(paths) if p.endswith("v_HandStandPushups_g10_c01.avi")][0]
    with caplog.at_level(logging.WARNING, logger="jepa_lit.data"):
        samples = [ds[zero], ds[missing]]
    for s in samples:  # replaced by a sample that loads
        assert s["index"] not in (zero, missing) and s["video"].shape == (3, 8, 32, 32)
    assert ds.num_bad >= 2 and {paths[zero], paths[missing]} <= set(ds.bad_files)
    assert "zero-byte" in caplog.text and "not found" in caplog.text and "v_YoYo_g10_c01.avi" in caplog.text
    # the replacement is deterministic
    assert [s["index"] for s in samples] == [ds[zero]["index"], ds[missing]["index"]]


@pytest.mark.parametrize("name, file, reason", [
    ("ucf101", "v_ApplyEyeMakeup_g10_c01.avi", "truncated: decoded 2 of 15 announced frames"),  # duration x fps
    ("ssv2", "104.webm", "truncated: decoded 23 of 40 announced frames"),
])
def test_truncated_video_skipped_counted_logged(name, file, reason, tree, caplog):
    dm = small(name, tree, train_augment=False)
    dm.setup("fit")
    ds = dm.train_set if name == "ucf101" else dm.val_dataloader().dataset  # ssv2's is in the validation split
    cut = [i for i, r in enumerate(ds.records) if r.path.endswith(file)][0]
    with caplog.at_level(logging.WARNING, logger="jepa_lit.data"):
        sample = ds[cut]  # the frames that survive are far fewer than announced: replaced, like any bad file
    assert sample["index"] != cut and sample["video"].shape == (3, 8, 32, 32)
    assert ds.num_bad >= 1 and ds.bad_files[ds.records[cut].path] == reason
    assert f"{file}: {reason}" in caplog.text


def test_raise_mode(tree):
    dm = small("ucf101", tree, on_error="raise")
    dm.setup("fit")
    zero = [i for i, r in enumerate(dm.train_set.records) if "v_YoYo_g10" in r.path][0]
    with pytest.raises(BadInputError, match="v_YoYo_g10_c01.avi: zero-byte"):
        dm.train_set[zero]
    with pytest.raises(ValueError, match="unknown template"):
        small("ssv2", tree, on_error="raise").setup("fit")


def test_unreadable_image_skipped(tmp_path, caplog):
    good = write_jpeg(tmp_path / "good.JPEG")
    bad = tmp_path / "bad.JPEG"
    bad.write_bytes(good.read_bytes()[:40])  # a truncated JPEG
    ds = ClipDataset(
        [Record(str(bad), 1, modality=IMAGE), Record(str(good), 2, modality=IMAGE)],
        UniformClipSampler(4),
        VideoEvalTransform(32),
        4,
    )
    with caplog.at_level(logging.WARNING, logger="jepa_lit.data"):
        sample = ds[0]
    assert sample["label"] == 2 and sample["modality"] == 1 and sample["video"].shape == (3, 4, 32, 32)
    assert "bad.JPEG" in caplog.text and "unreadable image" in caplog.text


def test_multiprocess_loader(tree):
    dm = small("diving48", tree, num_workers=2)
    dm.setup("fit")
    dm.train_set[0]  # decode in the parent first: forked workers must not hang on inherited decoder state
    n = sum(len(b["label"]) for b in dm.train_dataloader())
    assert n == 8  # 8 records, drop_last with batch 4


# --- configuration --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(MODULES))
def test_signature_is_cli_friendly(name):
    from jsonargparse import ArgumentParser

    cls = MODULES[name]
    own = list(inspect.signature(cls.__init__).parameters.values())[1:]
    shared = list(inspect.signature(ClipDataModule.__init__).parameters.values())[1:]
    # **kwargs forwards the shared arguments to ClipDataModule, which jsonargparse follows.
    params = [p for p in own if p.kind is not inspect.Parameter.VAR_KEYWORD] + shared
    for p in params:
        assert p.annotation is not inspect.Parameter.empty and p.default is not inspect.Parameter.empty, p.name
    names = [p.name for p in params]
    # The base holds what every dataset reads from (so the loaders never meet a subclass-only attribute).
    assert [p.name for p in shared[:3]] == ["root", "train_list", "test_list"]
    for required in ("root", "num_frames", "crop_size", "frame_step", "batch_size", "num_workers", "seed", "on_error"):
        assert required in names
    parser = ArgumentParser()
    parser.add_class_arguments(cls, "data")
    cfg = parser.parse_args(["--data.root", "/datasets/x", "--data.on_error", "raise", "--data.batch_size", "3"])
    assert cfg.data.root == "/datasets/x" and cfg.data.num_frames == 16 and cfg.data.batch_size == 3


@pytest.mark.parametrize("name", list(MODULES))
def test_root_may_be_the_folder_holding_all_datasets(name, tree):
    parent = str(Path(tree[name]["root"]).parent)  # holds ucf101/, ssv2/, imagenet100/, diving48/
    dm = small(name, tree, root=parent)
    dm.setup("test")
    assert len(dm.eval_set) == tree[name]["test_records"]


def test_an_unset_data_seed_follows_the_runs_seed(tree, monkeypatch):
    """seed: None (the default) is seed_everything's seed: another run seed gives another epoch order
    and other clip windows / crops; a set seed keeps them."""

    def first_batch(**kw):
        dm = small("ucf101", tree, **kw)
        dm.setup("fit")
        return next(iter(dm.train_dataloader()))

    monkeypatch.setenv("PL_GLOBAL_SEED", "1")
    follows_1, fixed_1, explicit_1 = first_batch(), first_batch(seed=7), first_batch(seed=1)
    monkeypatch.setenv("PL_GLOBAL_SEED", "2")
    follows_2, fixed_2 = first_batch(), first_batch(seed=7)
    assert torch.equal(follows_1["video"], explicit_1["video"])
    assert not torch.equal(follows_1["video"], follows_2["video"])
    assert torch.equal(fixed_1["video"], fixed_2["video"]) and torch.equal(fixed_1["index"], fixed_2["index"])


# --- uint8 batches --------------------------------------------------------------------------------
class BatchRecorder(TinyModule):
    """Keeps the clips each training step receives (after Lightning's transfer hooks)."""

    def __init__(self):
        super().__init__()
        self.clips = []

    def training_step(self, batch, batch_idx):
        self.clips.append(batch["video"].clone())
        return super().training_step(batch, batch_idx)


@pytest.mark.parametrize("name,augment", [("ucf101", True), ("imagenet100", True), ("ssv2", False)])
def test_uint8_batches_normalised_after_transfer_equal_float32_batches(name, augment, tree, tmp_path):
    """uint8_batches: the loader yields uint8 clips, the DataModule's on_after_batch_transfer normalises
    them, and a fit's training steps see exactly (torch.equal) the float32 path's clips, same seed."""
    def datamodule(uint8):
        sampling = "random" if augment else "uniform"
        return small(name, tree, seed=7, batch_size=2, train_augment=augment, train_sampling=sampling,
                     uint8_batches=uint8)

    as_float, as_uint8 = datamodule(False), datamodule(True)
    for dm in (as_float, as_uint8):
        dm.setup("fit")
    expected = [b["video"] for b in as_float.train_dataloader()]
    raw = list(as_uint8.train_dataloader())
    assert all(b["video"].dtype == torch.uint8 for b in raw) and all(e.dtype == torch.float32 for e in expected)
    normalised = [as_uint8.on_after_batch_transfer(b, 0) for b in raw]
    assert len(normalised) == len(expected) > 1
    assert all(torch.equal(n["video"], e) for n, e in zip(normalised, expected))
    assert all(torch.equal(n["label"], b["label"]) for n, b in zip(normalised, raw))

    module = BatchRecorder()  # through a Trainer: the hook runs after the transfer, before training_step
    trainer = L.Trainer(max_steps=2, limit_val_batches=0, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=datamodule(True))
    assert len(module.clips) == 2 and all(torch.equal(c, e) for c, e in zip(module.clips, expected))

    as_uint8.setup("test")  # the evaluation split stays float32
    assert next(iter(as_uint8.test_dataloader()))["video"].dtype == torch.float32


def test_uint8_batches_cast_like_float32_batches_under_true_precision(tree, tmp_path):
    """bf16-true casts float inputs before the transfer, when uint8 clips are not float yet: the hook casts
    them after normalising, so the steps see the float32 path's clips cast to bf16, bit for bit."""
    def fit_seen(uint8):
        module = BatchRecorder()
        trainer = L.Trainer(max_steps=2, limit_val_batches=0, accelerator="cpu", precision="bf16-true", logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            default_root_dir=tmp_path)
        trainer.fit(module, datamodule=small("ucf101", tree, seed=7, batch_size=2, uint8_batches=uint8))
        return module.clips

    as_float, as_uint8 = fit_seen(False), fit_seen(True)
    assert len(as_uint8) == 2 and all(c.dtype == torch.bfloat16 for c in as_float + as_uint8)
    assert all(torch.equal(u, f) for u, f in zip(as_uint8, as_float))


def test_probe_datamodule_refuses_uint8_batches(tree):
    from jepa_lit.eval.evaluate import check_probe_datamodule

    args = dict(train_sampling="uniform", train_augment=False)
    check_probe_datamodule(small("ucf101", tree, **args))
    with pytest.raises(ValueError, match="data.uint8_batches=true"):
        check_probe_datamodule(small("ucf101", tree, uint8_batches=True, **args))
