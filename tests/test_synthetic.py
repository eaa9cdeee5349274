import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from jepa_lit.data.synthetic import DIRECTIONS, SyntheticMotionDataModule, clip_seed, moving_disc_clip
from jepa_lit.eval.benchmarks import BENCHMARKS

REPO = Path(__file__).resolve().parents[1]


def disc_centre_and_radius(frame: np.ndarray) -> tuple[np.ndarray, int]:
    """Centroid and radius of the bright pixels (the disc is >= 120 in every channel, the background
    < 110). The disc is drawn whole (its centre is clipped at radius from the border), so its
    centroid is its centre exactly."""
    ys, xs = np.nonzero(frame.min(axis=-1) >= 115)
    return np.array([xs.mean(), ys.mean()]), (xs.max() - xs.min()) // 2


@pytest.mark.parametrize("label", range(8))
def test_disc_moves_in_the_labelled_direction(label):
    frames, got = moving_disc_clip(label + 8 * 3, seed=42, num_frames=8, size=160)
    assert got == label and frames.shape == (8, 160, 160, 3) and frames.dtype == np.uint8
    start, radius = disc_centre_and_radius(frames[0])
    centres = np.stack([disc_centre_and_radius(f)[0] for f in frames])
    # Frame t: the start centre moved t steps of (dx, dy), clipped so the disc stays inside the frame.
    expected = np.clip(start + np.outer(np.arange(len(frames)), DIRECTIONS[label]), radius, 160 - radius - 1)
    np.testing.assert_allclose(centres, expected, atol=1e-6)
    # A disc already at the border in every direction it moves would pass the line above standing
    # still; none of these clips starts so (some reach a border later, or start at one in x or y).
    assert not np.array_equal(centres[1], centres[0])


def test_recipe_ranges_and_determinism():
    a, _ = moving_disc_clip(5, seed=42, num_frames=32, size=160)
    b, _ = moving_disc_clip(5, seed=42, num_frames=32, size=160)
    c, _ = moving_disc_clip(5, seed=43, num_frames=32, size=160)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    dark = a[a.min(axis=-1) < 115]
    assert dark.max() <= 79 + 29
    assert not np.array_equal(a[0], a[1])  # per-frame noise


@pytest.mark.slow
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


# Clips 0 and 165 of the study's release: scripts/generate_eval_synth_videos.py renders clip i with
# make_clip(32 frames, 160, 160, seed=42 + i, the direction of label i % 8) before encoding it to H.264.
# Its background, disc colour, radius and start centre, and the sha256 of its first 8 rendered frames:
RELEASED = {
    0: ([42, 11, 67], [234, 207, 250], 17, (29, 22),
        "445886061cabffa0b22d9718ff3b2608a798a3ab46c6b0bebfb3262fdcf87104"),
    165: ([68, 63, 22], [251, 191, 223], 35, (65, 75),
          "f503ab0ee67b7402ec0703e075534a142fe1b0eba5c1c976663db4bde66531f0"),
}


@pytest.mark.parametrize("index", sorted(RELEASED))
def test_benchmark_clips_are_the_released_ones(index):
    background, colour, radius, (x0, y0), digest = RELEASED[index]
    frames, label = moving_disc_clip(index, seed=42, num_frames=32, size=160)
    assert label == index % 8
    assert hashlib.sha256(frames[:8].tobytes()).hexdigest() == digest
    first = frames[0].astype(int)
    assert first[y0, x0].tolist() == colour  # the disc's start centre
    assert first[y0, x0 + radius].tolist() == colour and first[y0, x0 + radius + 1].tolist() != colour
    corner = first[0, 0] - background  # background + one grey noise level for all channels
    assert len(set(corner.tolist())) == 1 and 0 <= corner[0] < 30


def test_shipped_pretraining_never_trains_on_the_benchmark_test_clips():
    """Clip i of seed s is drawn from seed + i, so two sets of clips share none only when those ranges
    are disjoint: the pretraining configs' training clips against the synthetic probes' test clips."""
    def training_seeds(args):
        data = SyntheticMotionDataModule(**args)
        return {clip_seed(i, data.seed) for i in range(data.num_train)}

    def test_seeds(args):
        data = SyntheticMotionDataModule(**args)
        return {clip_seed(i, data.seed) for i in range(data.num_train, data.num_clips)}

    def data_args(config):
        assert config["class_path"] == "jepa_lit.data.synthetic.SyntheticMotionDataModule"
        return config["init_args"]

    smoke = yaml.safe_load((REPO / "experiments" / "smoke.yaml").read_text())
    sweep = yaml.safe_load((REPO / "experiments" / "sweep.yaml").read_text())
    pretraining = [data_args(smoke["data"]), data_args(sweep["scales"]["smoke"]["fit"]["data"])]
    # every sweep run that pretrains on synthetic clips, with its regime's data and the scale's overrides
    # merged (the synthetic regime at full scale; every regime at the smoke scale)
    from jepa_lit.study.runs import expand, merged_config

    synthetic_runs = 0
    for scale in ("full", "smoke"):
        for run in expand(REPO / "experiments" / "sweep.yaml", scale):
            data = merged_config([yaml.safe_load(Path(f).read_text()) for f in run.config_stack], run.fit_overrides)
            if run.pretrain and data["data"]["class_path"].endswith("SyntheticMotionDataModule"):
                pretraining.append(data_args(data["data"]))
                synthetic_runs += 1
    assert synthetic_runs >= 3 * 3 + 2 * 10  # full: synthetic regime x 3 seeds; smoke: every pretraining run
    for name in ("synthetic_baseline.yaml", "synthetic_kinematic.yaml", "synthetic_sigreg.yaml"):
        assert "regimes/synthetic.yaml" in yaml.safe_load((REPO / "experiments" / name).read_text())["config"]
    regime = data_args(yaml.safe_load((REPO / "experiments" / "regimes" / "synthetic.yaml").read_text())["data"])
    assert (regime["crop_size"], regime["num_frames"]) == (128, 8)  # the study's synthetic pretraining
    probes = [BENCHMARKS["synthetic"].data_args]
    for name in ("synthetic.yaml", "synthetic_demo.yaml", "demo.yaml"):
        probes.append(data_args(yaml.safe_load((REPO / "experiments" / "probes" / name).read_text())["data"]))
    for train in pretraining:
        for probe in probes:
            assert training_seeds(train).isdisjoint(test_seeds(probe))


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


def test_training_order_follows_the_runs_seed_and_the_clips_do_not(monkeypatch):
    """``seed`` picks the clips (the dataset); the order they train in follows seed_everything's seed."""

    def epoch(run_seed):
        monkeypatch.setenv("PL_GLOBAL_SEED", str(run_seed))
        dm = SyntheticMotionDataModule(num_clips=20, num_frames=4, crop_size=32, batch_size=16, val_fraction=0.2)
        dm.setup("fit")
        batch = next(iter(dm.train_dataloader()))
        return batch["label"].tolist(), sorted(map(tuple, batch["video"].flatten(1)[:, :8].tolist()))

    order_1, clips_1 = epoch(1)
    order_2, clips_2 = epoch(2)
    assert order_1 != order_2 and clips_1 == clips_2
    assert epoch(1)[0] == order_1
