import numpy as np
import pytest
import torch

from jepa_lit.data.synthetic import DIRECTIONS, SyntheticMotionDataModule, moving_disc_clip


def disc_centre(frame: np.ndarray) -> np.ndarray:
    """Centroid of the bright pixels (the disc is >= 120 in every channel, the background < 110)."""
    ys, xs = np.nonzero(frame.min(axis=-1) >= 115)
    return np.array([xs.mean(), ys.mean()])


@pytest.mark.parametrize("label", range(8))
def test_disc_moves_in_the_labelled_direction(label):
    frames, got = moving_disc_clip(label + 8 * 3, seed=42, num_frames=8, size=160)
    assert got == label and frames.shape == (8, 160, 160, 3) and frames.dtype == np.uint8
    motion = disc_centre(frames[3]) - disc_centre(frames[0])
    dx, dy = DIRECTIONS[label]
    # The centre may be clipped at a border, but it never moves against the labelled direction.
    assert np.all(np.sign(np.round(motion)) * np.sign([dx, dy]) >= 0)


def test_recipe_ranges_and_determinism():
    a, _ = moving_disc_clip(5, seed=42, num_frames=32, size=160)
    b, _ = moving_disc_clip(5, seed=42, num_frames=32, size=160)
    c, _ = moving_disc_clip(5, seed=43, num_frames=32, size=160)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    dark = a[a.min(axis=-1) < 115]
    assert dark.max() <= 79 + 29
    assert not np.array_equal(a[0], a[1])  # per-frame noise


def test_benchmark_split_and_normalised_clips():
    data = SyntheticMotionDataModule()  # the benchmark: 200 clips, 160 / 40, first 8 of 32 frames, 160 px
    data.setup("fit")
    assert len(data.train_set) == 160 and len(data.val_set) == 40
    sample = data.val_set[0]
    assert sample["video"].shape == (3, 8, 160, 160) and sample["video"].dtype == torch.float32
    assert sample["label"] == 160 % 8 and sample["index"] == 160
    assert -2.2 < sample["video"].min() < 0 < sample["video"].max() < 2.7  # ImageNet normalisation
    counts = np.bincount(data.train_set.labels, minlength=8)
    assert np.all(counts == 20)
    batch = next(iter(data.train_dataloader()))
    assert batch["video"].shape == (8, 3, 8, 160, 160) and batch["label"].shape == (8,)


def test_first_frames_do_not_depend_on_clip_length():
    short = SyntheticMotionDataModule(num_clips=10, num_frames=4, total_frames=32, crop_size=64)
    long = SyntheticMotionDataModule(num_clips=10, num_frames=8, total_frames=32, crop_size=64)
    short.setup(), long.setup()
    assert torch.equal(short.train_set[3]["video"], long.train_set[3]["video"][:, :4])


def test_bad_split_is_refused_with_the_key():
    with pytest.raises(ValueError, match="val_fraction"):
        SyntheticMotionDataModule(val_fraction=1.5)
    with pytest.raises(ValueError, match="num_clips"):
        SyntheticMotionDataModule(num_clips=1)
