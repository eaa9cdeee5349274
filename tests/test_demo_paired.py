"""The demo's sentence from a paired test (issue 23 item 5): exact McNemar on the clips only one encoder got right,
and a paired bootstrap interval of the difference; results without per-clip correctness fall back, labelled."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from jepa_lit.demo import correct_per_clip, paired_test, summary_sentence


def flags(text: str) -> np.ndarray:
    return correct_per_clip({"metrics": {"test_correct": text}})


def test_per_clip_correctness_is_read_from_the_results_and_absent_in_old_ones():
    assert flags("0110").tolist() == [False, True, True, False]
    assert correct_per_clip({"metrics": {"top1": 50.0}}) is None  # written before test_correct existed


def test_mcnemar_known_value():
    # 10 clips: pretrained right on 0-7, random init right on 6-9: discordant 6 (pretrained only) vs 2 (random only)
    pretrained = flags("1111111100")
    random_init = flags("0000001111")
    test = paired_test(pretrained, random_init)
    assert (test.only_pretrained, test.only_random, test.num_clips) == (6, 2, 10)
    assert test.p == pytest.approx(2 * binom.cdf(2, 8, 0.5))  # exact two-sided binomial on the 8 discordant clips
    assert test.difference == pytest.approx(40.0)
    assert test.low <= test.difference <= test.high


def test_a_gain_is_claimed_only_when_the_paired_test_finds_one():
    # 160 clips, pretrained 60 % vs random init 30 %, the control's right clips a subset: 48 discordant, 0 against
    pretrained = np.arange(160) < 96
    random_init = np.arange(160) < 48
    test = paired_test(pretrained, random_init)
    text = summary_sentence("linear probe", (30.0, 23.0, 37.0), (60.0, 52.0, 67.0), 160, test)
    assert text.startswith("Pretraining raised linear probe accuracy on 160 held-out test clips from 30.0% (random "
                           "init) to 60.0% (paired over the same 160 clips: +30.0 points")
    assert "48 clips right only with pretraining, 0 only at random init, exact McNemar p = " in text
    # the same two accuracies, but the encoders disagree on many clips both ways: 5 vs 3 discordant -> no claim
    close = paired_test(flags("11111000" + "1" * 20), flags("00000111" + "1" * 20))
    text = summary_sentence("linear probe", (82.1, 70.0, 92.0), (89.3, 78.0, 96.0), 28, close)
    assert text.startswith("Pretraining made no detectable difference to linear probe accuracy on 28 held-out")


def test_old_results_fall_back_to_the_unpaired_sentence_and_say_so():
    text = summary_sentence("linear probe", (25.0, 12.5, 37.5), (55.0, 40.0, 70.0), 40)
    assert text.startswith("Pretraining raised") and "unpaired: these results hold no per-clip correctness" in text


def test_clips_must_match():
    with pytest.raises(ValueError, match="same test clips"):
        paired_test(flags("101"), flags("10"))


@pytest.mark.slow
def test_the_probe_records_the_selected_heads_correctness_per_clip():
    """ProbeModule writes metrics.test_correct: one flag per test clip, in order, agreeing with its top-1."""
    import lightning as L
    import torch

    from jepa_lit.eval.feature_data import FeatureDataModule
    from jepa_lit.eval.features import FeatureSet
    from jepa_lit.eval.probe_module import ProbeModule

    L.seed_everything(0, verbose=False)
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat_interleave(6)
    features = 0.3 * torch.randn(len(labels), 1, 2, 8, generator=g)
    features[torch.arange(len(labels)), :, :, labels] += 3.0
    train = FeatureSet(features, labels)
    test = FeatureSet(features.clone(), (labels + torch.tensor([1] * 5 + [0] * 19)) % 4)  # 5 clips relabelled
    module = ProbeModule("linear", lrs=[1e-2], weight_decays=[0.0], bootstrap_samples=10)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, max_epochs=20,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    data = FeatureDataModule(batch_size=8, val_fraction=0.0).attach(train, test, num_classes=4)
    trainer.fit(module, datamodule=data)
    trainer.test(module, datamodule=data, verbose=False)
    metrics = module.results["metrics"]
    correct = correct_per_clip(module.results)
    assert len(correct) == metrics["num_test_clips"] == 24
    assert 100.0 * correct.mean() == pytest.approx(metrics["top1"], abs=1e-3)
    assert not correct[:5].any() and correct[5:].all()  # the relabelled clips, in the test set's order
