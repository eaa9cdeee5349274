"""Probes, multi-head training and selection, metrics, bootstrap interval (jepa_lit.models.probes, jepa_lit.eval.probe_module)."""

import lightning as L
import pytest
import torch

from jepa_lit.eval.feature_data import DEFAULT_VAL_FRACTION, FeatureDataModule, holdout_split
from jepa_lit.eval.features import FeatureExtractor, FeatureSet
from jepa_lit.eval.probe_module import ProbeModule, bootstrap_interval
from jepa_lit.models import VisionTransformer
from jepa_lit.models.probes import PROBE_TYPES, AttentiveProbe, build_probe


def quiet_trainer(**kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, **kwargs)


def separable(n_per_class: int = 16, classes: int = 4, tokens: int = 6, dim: int = 32, seed: int = 0):
    """Linearly separable toy features [N, 1, L, D]: each class shifts every token along its own direction."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    features = 0.3 * torch.randn(len(labels), 1, tokens, dim, generator=g)
    features[torch.arange(len(labels)), :, :, labels] += 3.0
    return FeatureSet(features, labels)


@pytest.mark.parametrize("kind", PROBE_TYPES)
def test_probe_shapes_and_gradients_reach_only_the_probe(kind):
    encoder = VisionTransformer(size="tiny", depth=2, num_frames=4, img_size=32)  # trainable as built
    extractor = FeatureExtractor(encoder)  # what the probe pipeline reads features through: it freezes
    probe = build_probe(kind, embed_dim=192, num_classes=5)
    features = extractor.predict_step({"video": torch.randn(3, 3, 4, 32, 32), "label": [0, 1, 2]}, 0)["features"]
    tokens = features[:, 0].float()  # [B, L, D] of the single view
    logits = probe(tokens)
    assert logits.shape == (3, 5)
    logits.sum().backward()
    assert all(p.grad is None for p in encoder.parameters())
    assert all(p.grad is not None for p in probe.parameters())


@pytest.mark.slow
def test_probe_defaults_follow_the_papers():
    assert build_probe("attentive", 192, 3).attn.num_heads == 8  # the study
    vjepa2 = build_probe("vjepa2_attentive", 192, 3)
    assert vjepa2.cross_block.xattn.num_heads == 16 and len(vjepa2.blocks) == 3  # V-JEPA 2: depth 4, 16 heads
    mean = build_probe("attentive_mean", 32, 3)
    x = torch.randn(2, 7, 32)
    assert torch.allclose(mean(x), mean(x.mean(1, keepdim=True)), atol=1e-6)  # the SSv2 variant pools first
    with pytest.raises(ValueError, match="attentive, attentive_mean, linear, linear_bn, vjepa2_attentive"):
        build_probe("mlp", 32, 3)


def test_linear_bn_probe_standardises_the_mean_token():
    """linear_bn = a linear layer on the mean token standardised by its batch statistics in training and its
    running statistics in evaluation (MAE's protocol): a common offset and scale of the features change
    nothing in training, and the plain linear probe is the same head without the norm."""
    torch.manual_seed(0)
    probe = build_probe("linear_bn", embed_dim=6, num_classes=3).train()
    tokens = torch.randn(8, 5, 6)
    mean = tokens.mean(1)
    standardised = (mean - mean.mean(0)) / torch.sqrt(mean.var(0, unbiased=False) + probe.norm.eps)
    assert torch.allclose(probe(tokens), probe.head(standardised), atol=1e-5)
    assert torch.allclose(probe(tokens * 1000.0 + 7.0), probe(tokens), atol=1e-3)
    assert list(probe.state_dict()) == ["norm.running_mean", "norm.running_var", "norm.num_batches_tracked",
                                        "head.weight", "head.bias"]
    plain = build_probe("linear", embed_dim=6, num_classes=3)
    assert list(plain.state_dict()) == ["head.weight", "head.bias"]  # the study's ImageNet-100 probe, unchanged
    plain.head.load_state_dict(probe.head.state_dict())
    probe.eval()  # the running statistics now, which training moved away from their (0, 1) start
    norm = probe.norm
    assert not torch.allclose(norm.running_mean, torch.zeros(6))
    running = (mean - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps)
    assert torch.allclose(probe(tokens), plain.head(running), atol=1e-5)


def test_attentive_probe_cls_output_equals_full_self_attention():
    probe = AttentiveProbe(32, 4, num_heads=8).eval()
    tokens = torch.randn(2, 9, 32)
    sequence = torch.cat([probe.cls_token.expand(2, -1, -1), tokens], 1)
    full, _ = probe.attn(sequence, sequence, sequence)  # self-attention over [cls; tokens]
    expected = probe.head(probe.norm(sequence + full)[:, 0])
    assert torch.allclose(probe(tokens), expected, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("kind", PROBE_TYPES)
def test_every_probe_reaches_100_on_a_separable_toy_set(kind):
    torch.manual_seed(0)
    data = separable()
    features = FeatureDataModule(batch_size=16).attach(data, data, num_classes=4)
    lr = 1e-2 if kind == "linear_bn" else 3e-3  # standardised inputs: smaller steps in the class directions
    module = ProbeModule(kind, lrs=[lr], weight_decays=[0.0], attn_heads=4, vjepa2_depth=2, bootstrap_samples=50)
    trainer = quiet_trainer(max_epochs=15)
    trainer.fit(module, datamodule=features)
    trainer.test(module, datamodule=features, verbose=False)
    metrics = module.results["metrics"]
    assert metrics["top1"] == 100.0 and metrics["mean_class_acc"] == 100.0 and metrics["top5"] == 100.0
    assert metrics["top1_ci95"] == [100.0, 100.0]


@pytest.mark.slow
def test_multi_head_training_reports_every_head_and_selects_by_the_stated_rule():
    torch.manual_seed(0)
    data = separable()
    features = FeatureDataModule(batch_size=16, val_fraction=0.25).attach(data, data, num_classes=4)
    # lr 0 never learns; the others do: both rules must pick a learning head and say how they chose.
    module = ProbeModule("linear", lrs=[0.0, 1e-2], weight_decays=[0.0, 0.01], selection="val_top1",
                         bootstrap_samples=100)
    trainer = quiet_trainer(max_epochs=10, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=features)
    trainer.test(module, datamodule=features, verbose=False)
    heads, selection = module.results["heads"], module.results["selection"]
    assert [(h["lr"], h["weight_decay"]) for h in heads] == [(0.0, 0.0), (0.0, 0.01), (1e-2, 0.0), (1e-2, 0.01)]
    assert all(h["val_top1"] is not None for h in heads)
    assert heads[0]["val_top1"] < 60.0 and heads[2]["val_top1"] == 100.0  # heads trained independently
    assert selection["selected_head"] in (2, 3) and selection["rule"] == "val_top1"
    assert "validation split" in selection["description"] and selection["num_heads"] == 4
    assert selection["optimistic"] is False and selection["tested_heads"] == [selection["selected_head"]]
    # only the chosen head is scored on the test clips
    assert [h["top1"] is None for h in heads] == [i != selection["selected_head"] for i in range(4)]
    assert module.results["metrics"]["top1"] == 100.0
    module.hparams.selection = "test_top1"
    assert module.select([{"top1": 10.0}, {"top1": 90.0}, {"top1": 90.0}, {"top1": 5.0}]) == 1  # first on ties


def fit_and_test(selection: str, train: FeatureSet, test: FeatureSet) -> dict:
    """Two linear heads on ``train`` (25 % held out for validation), scored on ``test``: lr 0 (never
    learns) and lr 1e-2 (learns the training labels); the module's results."""
    L.seed_everything(0, verbose=False)
    features = FeatureDataModule(batch_size=16, val_fraction=0.25).attach(train, test, num_classes=4)
    module = ProbeModule("linear", lrs=[0.0, 1e-2], weight_decays=[0.0], selection=selection, bootstrap_samples=10)
    trainer = quiet_trainer(max_epochs=10, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=features)
    trainer.test(module, datamodule=features, verbose=False)
    return module.results


def test_validation_selection_never_reads_the_test_labels():
    """Test labels shifted by one class: the head that learned the training labels is the best on the
    validation split and the worst on the test clips. The optimistic rule picks the other one (and says
    it is optimistic); the validation rule picks the learned head whatever the test labels are."""
    train = separable()
    shifted = FeatureSet(train.features, (train.labels + 1) % 4)
    optimistic = fit_and_test("test_top1", train, shifted)
    heads = optimistic["heads"]
    assert heads[1]["val_top1"] == 100.0 > heads[0]["val_top1"] and heads[1]["top1"] == 0.0
    assert optimistic["selection"]["selected_head"] == 0  # the test-set maximum (ties: the first head)
    assert optimistic["selection"]["val_selected_head"] == 1  # what validation would have chosen
    assert optimistic["selection"]["optimistic"] is True and "OPTIMISTIC" in optimistic["selection"]["description"]

    on_validation = fit_and_test("val_top1", train, shifted)
    assert on_validation["selection"]["selected_head"] == 1 and on_validation["selection"]["optimistic"] is False
    assert on_validation["metrics"]["top1"] == 0.0 and on_validation["heads"][0]["top1"] is None
    assert [h["val_top1"] for h in on_validation["heads"]] == [h["val_top1"] for h in heads]
    # the same choice with the true test labels: the test labels never entered it
    assert fit_and_test("val_top1", train, train)["selection"]["selected_head"] == 1


def test_one_head_needs_no_validation_split_and_trains_on_every_training_clip():
    data = separable(n_per_class=4)
    module = ProbeModule("linear", lrs=[1e-2], weight_decays=[0.0], bootstrap_samples=10)
    assert module.hparams.selection == "val_top1" and not module.needs_validation
    features = FeatureDataModule(batch_size=8).attach(data, data, num_classes=4, needs_validation=module.needs_validation)
    assert features.sizes() == {"train": 16, "val": 0, "test": 16} and features.val_dataloader() == []
    trainer = quiet_trainer(max_epochs=1)
    trainer.fit(module, datamodule=features)
    trainer.test(module, datamodule=features, verbose=False)
    selection = module.results["selection"]
    assert selection["selected_head"] == 0 and selection["optimistic"] is False and "one head" in selection["description"]


def test_val_selection_without_a_validation_split_is_a_clear_error():
    module = ProbeModule("linear", lrs=[1e-3, 1e-2], selection="val_top1", embed_dim=4, num_classes=2)
    assert module.needs_validation
    with pytest.raises(ValueError, match="val_fraction"):
        module.select([{"top1": 1.0}, {"top1": 2.0}])


def test_the_hold_out_is_seeded_stratified_and_only_taken_when_a_head_must_be_chosen():
    labels = torch.tensor([0] * 20 + [1] * 10 + [2] * 6)
    data = FeatureSet(torch.zeros(len(labels), 1, 1, 4), labels)
    train, val = holdout_split(labels.numpy(), 0.25, seed=3)
    assert sorted(train + val) == list(range(36)) and not set(train) & set(val)
    assert len(val) == 9 and torch.bincount(labels[val]).tolist() == [5, 3, 1]  # 5, 2.5, 1.5 by largest remainder
    assert (train, val) == holdout_split(labels.numpy(), 0.25, seed=3)
    assert val != holdout_split(labels.numpy(), 0.25, seed=4)[1]
    assert FeatureDataModule().attach(data, data, 3).sizes()["val"] == 0  # one head: nothing held out
    auto = FeatureDataModule().attach(data, data, 3, needs_validation=True)
    assert auto.val_fraction_used == DEFAULT_VAL_FRACTION and auto.sizes() == {"train": 32, "val": 4, "test": 36}
    assert FeatureDataModule(val_fraction=0.0).attach(data, data, 3, needs_validation=True).sizes()["val"] == 0
    with pytest.raises(ValueError, match="features.val_fraction"):
        FeatureDataModule(val_fraction=1.0)


def test_bootstrap_interval_sanity():
    assert bootstrap_interval(torch.ones(40, dtype=torch.bool)) == (100.0, 100.0)
    assert bootstrap_interval(torch.zeros(40, dtype=torch.bool)) == (0.0, 0.0)
    half = torch.arange(40) % 2 == 0
    lo, hi = bootstrap_interval(half, samples=2000, seed=1)
    assert lo < 50.0 < hi and 20.0 < hi - lo < 40.0  # binomial: 1.96 * sqrt(.25 / 40) ~ 15.5 points a side
    lo_big, hi_big = bootstrap_interval(torch.arange(4000) % 2 == 0, samples=500)
    assert hi_big - lo_big < (hi - lo) / 5  # shrinks like 1 / sqrt(n)
    assert bootstrap_interval(half, seed=3) == bootstrap_interval(half, seed=3)  # seeded


def test_multi_view_test_clips_average_the_views_probabilities():
    module = ProbeModule("linear", embed_dim=2, num_classes=2, bootstrap_samples=0)
    with torch.no_grad():
        module.heads[0].head.weight.copy_(torch.eye(2) * 10)
        module.heads[0].head.bias.zero_()
    # one clip, three views: two weakly for class 0, one strongly for class 1: a majority vote of the
    # views would say 0, the mean of the probabilities says 1.
    views = torch.tensor([[[[0.05, 0.0]], [[0.05, 0.0]], [[0.0, 1.0]]]])
    probabilities = module.head_probabilities(views)[0]
    expected = torch.stack([torch.softmax(torch.tensor(v[0]) * 10, -1) for v in views[0].tolist()]).mean(0)
    assert torch.allclose(probabilities[0], expected) and probabilities.argmax().item() == 1
