"""The eval encoder of a checkpoint, feature extraction and the on-disk fp16 cache (jepa_lit.eval.checkpoint, .features)."""

import json
import logging
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from jepa_lit.data.fixtures import make_ucf101
from jepa_lit.data.synthetic import SyntheticMotionDataModule
from jepa_lit.data.ucf101 import UCF101DataModule
from jepa_lit.eval.checkpoint import load_eval_encoder, weights_sha256
from jepa_lit.eval.feature_data import FeatureDataModule
from jepa_lit.eval.features import FEATURE_LAYERS, cache_key, encode_clips, extract_or_load
from jepa_lit.models import VisionTransformer
from jepa_lit.module import JEPAModule
from jepa_lit.objectives.heads import app_channels, head_input

CPU = {"accelerator": "cpu"}


@pytest.fixture
def tiny_module(tiny_module):
    """This file's size (tests/conftest.py): 4-frame clips, one mask generator."""
    return partial(tiny_module, num_frames=4, generators=[(2, 0.25)])


def save_checkpoint(module: JEPAModule, path) -> str:
    """What Lightning writes, reduced to the parts the probe reads."""
    checkpoint = {"state_dict": module.state_dict(), "global_step": 7, "epoch": 1}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return str(path)


def tiny_data(**kwargs) -> SyntheticMotionDataModule:
    args = dict(num_clips=10, num_frames=4, total_frames=8, crop_size=32, batch_size=4)
    return SyntheticMotionDataModule(**{**args, **kwargs})


def test_ema_checkpoint_is_probed_with_the_ema_target(tmp_path, tiny_module):
    module = tiny_module()
    with torch.no_grad():
        for p in module.target_encoder.parameters():
            p.add_(0.5)  # the target now differs from the online encoder
    frozen = load_eval_encoder(save_checkpoint(module, tmp_path / "ema.ckpt"))
    assert frozen.used == "target_encoder" and frozen.target_mode == "ema"
    assert weights_sha256(frozen.encoder) == weights_sha256(module.target_encoder)
    assert weights_sha256(frozen.encoder) != weights_sha256(module.encoder)
    assert not frozen.encoder.training and not any(p.requires_grad for p in frozen.encoder.parameters())
    assert frozen.checkpoint_info == {"epoch": 1, "global_step": 7}


def test_no_ema_checkpoint_is_probed_with_the_online_encoder_that_trained(tmp_path, tiny_module):
    module = tiny_module(target_encoder="online")
    frozen = load_eval_encoder(save_checkpoint(module, tmp_path / "online.ckpt"))
    assert frozen.used == "encoder" and frozen.target_mode == "online"
    assert weights_sha256(frozen.encoder) == weights_sha256(module.encoder)
    assert "online encoder" in frozen.describe()["description"]


@pytest.mark.slow
def test_random_init_control_is_labelled_and_reproducible(tmp_path, tiny_module):
    path = save_checkpoint(tiny_module(), tmp_path / "run.ckpt")
    a, b = load_eval_encoder(path, random_init=True, seed=3), load_eval_encoder(path, random_init=True, seed=3)
    trained = load_eval_encoder(path)
    assert a.used == "random_init" and a.weights_sha256 == b.weights_sha256 != trained.weights_sha256
    # the same architecture: every parameter name and shape, only the values differ
    assert {k: v.shape for k, v in a.encoder.state_dict().items()} == {
        k: v.shape for k, v in trained.encoder.state_dict().items()}


def test_a_checkpoint_without_jepa_lit_metadata_is_refused(tmp_path, tiny_module):
    module = tiny_module()
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": module.state_dict()}, path)
    with pytest.raises(ValueError, match=r"plain.ckpt: not a jepa-lit pretraining checkpoint.*'jepa_lit'"):
        load_eval_encoder(str(path))
    torch.save({"state_dict": {}, "jepa_lit": {"encoder_config": {}, "eval_encoder": "ema"}}, path)
    with pytest.raises(ValueError, match="'target_encoder' or 'encoder'"):
        load_eval_encoder(str(path))
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_eval_encoder(str(tmp_path / "missing.ckpt"))


@pytest.mark.slow
def test_cached_features_equal_fresh_ones_and_a_second_run_never_runs_the_encoder(tmp_path):
    encoder = VisionTransformer(size="tiny", depth=2, num_frames=4, img_size=32).eval()
    data = tiny_data()
    key, description = cache_key(weights_sha256(encoder), {}, "tokens", "synthetic", {"crop_size": 32})
    sets, hit, entry = extract_or_load(encoder, data, tmp_path, key, description, "tokens", CPU)
    assert not hit and (entry / "meta.json").is_file()
    assert sets["train"].shape == (8, 1, 2 * 2 * 2, 192) and sets["test"].shape == (2, 1, 8, 192)
    assert sets["train"].features.dtype == np.float16
    # equal to the encoder run directly on the clips, in dataset order (up to fp16 rounding)
    clips = torch.stack([data.train_set[i]["video"] for i in range(8)])
    with torch.no_grad():
        fresh = encode_clips(encoder, clips, "tokens")
    cached = torch.from_numpy(np.array(sets["train"].features)).float()
    assert torch.allclose(cached, fresh, atol=2e-3, rtol=1e-3)
    assert list(sets["train"].labels) == [data.train_set[i]["label"] for i in range(8)]

    calls = []
    encoder.register_forward_hook(lambda *args: calls.append(1))
    again, hit, _ = extract_or_load(encoder, data, tmp_path, key, description, "tokens", CPU)
    assert hit and not calls
    assert np.array_equal(np.asarray(again["test"].features), np.asarray(sets["test"].features))
    assert json.loads((entry / "meta.json").read_text())["splits"]["test"]["shape"] == [2, 1, 8, 192]


@pytest.mark.slow
def test_a_bad_clip_is_dropped_from_the_cached_split_not_replaced(tmp_path):
    """UCF-101's fixture lists 9 train videos: 6 good ones, then a zero-byte, a truncated and a missing one."""
    make_ucf101(tmp_path / "ucf101")
    data = UCF101DataModule(root=str(tmp_path / "ucf101"), num_frames=4, crop_size=32, batch_size=4, num_workers=0,
                            train_sampling="uniform", train_augment=False)
    encoder = VisionTransformer(size="tiny", depth=2, num_frames=4, img_size=32).eval()
    key, description = cache_key(weights_sha256(encoder), {}, "tokens", "ucf101", {"crop_size": 32})
    sets, hit, entry = extract_or_load(encoder, data, tmp_path / "cache", key, description, "tokens", CPU)
    train = sets["train"]
    assert len(train) == 6 and train.shape == (6, 1, 8, 192)
    assert [(Path(c["path"]).name, c["reason"].split(":")[0]) for c in train.dropped] == [
        ("v_YoYo_g10_c01.avi", "zero-byte file"), ("v_ApplyEyeMakeup_g10_c01.avi", "truncated"),
        ("v_HandStandPushups_g10_c01.avi", "file not found (listed in the annotations but missing on disk)")]
    # each kept clip is its own video (no substitute): the encoder on the 6 good videos, in order, and their labels
    records = data.train_set.records
    clips = torch.stack([data.train_set[i]["video"] for i in range(6)])
    with torch.no_grad():
        fresh = encode_clips(encoder, clips, "tokens")
    cached = torch.stack([train[i]["features"] for i in range(6)]).float()
    assert torch.allclose(cached, fresh, atol=2e-3, rtol=1e-3)
    assert [train[i]["label"] for i in range(6)] == [r.label for r in records[:6]]
    meta = json.loads((entry / "meta.json").read_text())["splits"]
    assert (meta["train"]["used"], meta["train"]["dropped"], meta["test"]["dropped"]) == (6, 3, 0)

    # a cache hit gives the same clips and the same record of the dropped ones
    again, hit, _ = extract_or_load(encoder, data, tmp_path / "cache", key, description, "tokens", CPU)
    assert hit and len(again["train"]) == 6 and again["train"].dropped == train.dropped
    assert torch.equal(again["train"][5]["features"], train[5]["features"])


def test_mean_pooling_and_multi_view_clips():
    encoder = VisionTransformer(size="tiny", depth=2, num_frames=4, img_size=32).eval()
    views = torch.randn(2, 3, 3, 4, 32, 32)  # [B, V, 3, T, H, W]
    with torch.no_grad():
        tokens = encode_clips(encoder, views, "tokens")
        pooled = encode_clips(encoder, views, "mean")
        single = encoder(views[1, 2:3])
    assert tokens.shape == (2, 3, 8, 192) and pooled.shape == (2, 3, 1, 192)
    assert torch.allclose(tokens[1, 2], single[0], atol=1e-5)
    assert torch.allclose(pooled, tokens.mean(2, keepdim=True), atol=1e-6)


def test_cache_key_follows_what_decides_the_features():
    base = cache_key("w", {"depth": 2}, "tokens", "D", {"crop_size": 224, "batch_size": 8, "num_workers": 8})[0]
    assert base == cache_key("w", {"depth": 2}, "tokens", "D", {"crop_size": 224, "batch_size": 64, "num_workers": 0})[0]
    assert base != cache_key("w", {"depth": 2}, "mean", "D", {"crop_size": 224})[0]
    assert base != cache_key("w", {"depth": 2}, "tokens", "D", {"crop_size": 160})[0]
    assert base != cache_key("v", {"depth": 2}, "tokens", "D", {"crop_size": 224})[0]


def test_each_feature_layer_has_its_width_and_last_is_unchanged():
    """ViT-tiny (D 192) at depth 2: 4 hierarchical levels, 768 channels; FWM's split at app_ratio 0.5 and 0.25."""
    encoder = VisionTransformer(size="tiny", depth=2, num_frames=4, img_size=32).eval()
    clips = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        plain = encoder(clips)
        layers = {layer: encode_clips(encoder, clips, "tokens", layer) for layer in FEATURE_LAYERS}
        quarter = {layer: encode_clips(encoder, clips, "tokens", layer, app_ratio=0.25)
                   for layer in ("appearance", "dynamics")}
    assert {k: v.shape[-1] for k, v in layers.items()} == {"last": 192, "levels": 768, "appearance": 384, "dynamics": 384}
    assert {k: v.shape[-1] for k, v in quarter.items()} == {"appearance": 192, "dynamics": 576}
    assert all(v.shape[:3] == (2, 1, 8) for v in layers.values())
    assert torch.equal(layers["last"][:, 0], plain)  # the default: the plain forward, bit for bit
    assert torch.equal(layers["levels"][..., -192:], layers["last"])  # the last level of `levels` is `last`
    assert torch.equal(torch.cat([layers["appearance"], layers["dynamics"]], -1), layers["levels"])
    assert torch.equal(torch.cat([quarter["appearance"], quarter["dynamics"]], -1), layers["levels"])
    # Z_app / Z_dyn are the channels FWM's own split gives on the encoder's hierarchical output
    split = app_channels(768, 0.25)
    assert split == 192 and torch.equal(quarter["dynamics"], head_input(layers["levels"], "dynamics", 0.25))
    with pytest.raises(ValueError, match="features.layer='middle'"):
        encode_clips(encoder, clips, "tokens", "middle")
    with pytest.raises(ValueError, match="features.app_ratio=1.5"):
        FeatureDataModule(layer="dynamics", app_ratio=1.5)


def test_caches_of_different_layers_never_mix():
    key = lambda *layer: cache_key("w", {"depth": 2}, "tokens", "D", {"crop_size": 224}, *layer)[0]  # noqa: E731
    # `last` hashes what the key always hashed: caches written before the layer option still hit
    assert key() == key("last") == key("last", 0.3) == "1c80451fe04b839b092d844a"
    keys = [key("last"), key("levels"), key("appearance"), key("dynamics"), key("dynamics", 0.25)]
    assert len(set(keys)) == len(keys)
    assert key("levels", 0.25) == key("levels")  # app_ratio only decides the split
    description = cache_key("w", {}, "tokens", "D", {}, "dynamics", 0.25)[1]
    assert (description["layer"], description["app_ratio"]) == ("dynamics", 0.25)


def test_extraction_caches_the_chosen_layer(tmp_path):
    encoder = VisionTransformer(size="tiny", depth=2, num_frames=4, img_size=32).eval()
    data = tiny_data()
    entries = {}
    for layer in ("last", "dynamics"):
        key, description = cache_key(weights_sha256(encoder), {}, "mean", "synthetic", {"crop_size": 32}, layer)
        sets, hit, entries[layer] = extract_or_load(encoder, data, tmp_path, key, description, "mean", CPU, layer)
        assert not hit and sets["train"].shape == (8, 1, 1, {"last": 192, "dynamics": 384}[layer])
        features = FeatureDataModule(layer=layer, pooling="mean").attach(sets["train"], sets["test"], 8)
        assert features.embed_dim == sets["train"].shape[-1]  # the probe sizes itself from this width
    assert entries["last"] != entries["dynamics"]
    assert json.loads((entries["dynamics"] / "meta.json").read_text())["layer"] == "dynamics"


CACHE_DAMAGE = {  # how the cached features.npy is damaged -> what the one warning says
    "zeroed in place": "train/features.npy: its content hash differs from meta.json",
    "truncated": "train/features.npy: it has 64 bytes, meta.json says",
    "no records": "meta.json has no record of its files' sizes and hashes",
}


@pytest.mark.parametrize("how", list(CACHE_DAMAGE))
def test_a_damaged_feature_cache_is_recomputed_with_one_message(tmp_path, caplog, how):
    encoder = VisionTransformer(size="tiny", depth=1, num_frames=4, img_size=32).eval()
    data = tiny_data()
    key, description = cache_key(weights_sha256(encoder), {}, "mean", "synthetic", {"crop_size": 32})
    sets, hit, entry = extract_or_load(encoder, data, tmp_path, key, description, "mean", CPU)
    good = np.array(sets["train"].features)
    del sets  # the memory map
    features = entry / "train" / "features.npy"
    if how == "zeroed in place":
        features.write_bytes(bytes(features.stat().st_size))
    elif how == "truncated":
        features.write_bytes(features.read_bytes()[:64])
    else:
        meta = json.loads((entry / "meta.json").read_text())
        del meta["files"]
        (entry / "meta.json").write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="jepa_lit.eval"):
        again, hit, same = extract_or_load(encoder, data, tmp_path, key, description, "mean", CPU)
    warnings = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert not hit and same == entry and len(warnings) == 1
    assert str(entry) in warnings[0] and CACHE_DAMAGE[how] in warnings[0] and "recomputing them" in warnings[0]
    assert np.array_equal(np.array(again["train"].features), good)
    assert sorted(p.name for p in tmp_path.iterdir()) == [key]  # the damaged copy is gone
    del again
    caplog.clear()
    _, hit, _ = extract_or_load(encoder, data, tmp_path, key, description, "mean", CPU)
    assert hit and not [r for r in caplog.records if "damaged" in r.getMessage()]


def test_in_memory_extraction_under_bf16_autocast():
    """The online probe extracts under the trainer's autocast (bf16-mixed on CPUs with bf16 units); the fp16
    features must still be concatenated (CPU autocast rejects fp16 inputs to cat)."""
    from jepa_lit.eval.features import extract_in_memory, split_loaders

    data = tiny_data(batch_size=3)
    encoder = VisionTransformer(size="tiny", depth=1, num_frames=4, img_size=32).eval()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        found = extract_in_memory(encoder, split_loaders(data)["train"], "mean", torch.device("cpu"))
    assert found.features.shape[0] == data.num_train and found.features.dtype == torch.float16
    assert torch.isfinite(found.features.float()).all()
