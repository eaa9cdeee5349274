from functools import partial

import lightning as L
import pytest
import torch

from jepa_lit.data.synthetic import SyntheticMotionDataModule
from jepa_lit.models import VisionTransformer
from jepa_lit.objectives import Delta
from jepa_lit.schedules import OptimizerConfig


@pytest.fixture
def tiny_module(tiny_module):
    """This file's size (tests/conftest.py): 4 blocks on 64 px clips, two mask generators, a 2-block predictor."""
    return partial(tiny_module, depth=4, img_size=64, generators=[(2, 0.25), (1, 0.5)], predictor_depth=2)


def test_ema_update_arithmetic(tiny_module):
    module = tiny_module()
    for p in module.encoder.parameters():
        p.data.fill_(1.0)
    for p in module.target_encoder.parameters():
        p.data.fill_(0.0)
    module.update_target(0.9)
    assert all(torch.allclose(p, torch.full_like(p, 0.1)) for p in module.target_encoder.parameters())
    module.update_target(0.5)
    assert all(torch.allclose(p, torch.full_like(p, 0.55)) for p in module.target_encoder.parameters())


def test_target_is_a_frozen_copy_and_levels_are_normalised(tiny_module):
    module = tiny_module()
    assert not any(p.requires_grad for p in module.target_encoder.parameters())
    target = module.target_features(torch.randn(2, 3, 8, 32, 32))
    levels = target.unflatten(-1, (4, 192))
    assert torch.allclose(levels.mean(-1), torch.zeros(()), atol=1e-5)
    assert torch.allclose(levels.std(-1, unbiased=False), torch.ones(()), atol=1e-3)
    assert not target.requires_grad


def test_step_gradients_reach_encoder_and_predictor_not_target(tiny_module):
    module = tiny_module(objectives=[Delta()], context_loss_start=0.0)
    outputs = module.forward_step(torch.randn(2, 3, 8, 32, 32), step=0)
    terms = module.loss_terms(outputs)
    assert set(terms) == {"pred", "context", "delta"}
    torch.stack(list(terms.values())).sum().backward()
    assert module.encoder.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert module.predictor.predictor_proj.weight.grad.abs().sum() > 0
    assert len(module.predictor.mask_tokens) == 1  # shared by both generators (the study's release)
    assert module.predictor.mask_tokens[0].grad.abs().sum() > 0
    assert all(p.grad is None for p in module.target_encoder.parameters())


def test_per_generator_mask_tokens_each_train(tiny_module):
    module = tiny_module(mask_tokens="per_generator")
    outputs = module.forward_step(torch.randn(2, 3, 8, 32, 32), step=0)
    torch.stack(list(module.loss_terms(outputs).values())).sum().backward()
    assert len(module.predictor.mask_tokens) == 2
    assert all(token.grad.abs().sum() > 0 for token in module.predictor.mask_tokens)


def test_shared_mask_token_is_what_both_generators_read(tiny_module):
    """With one shared token, a generator's predictions do not depend on its index; per generator, the
    second generator reads token 1 (set apart here, so its predictions differ)."""
    torch.manual_seed(0)
    clip = torch.randn(2, 3, 8, 32, 32)
    for mode in ("shared", "per_generator"):
        module = tiny_module(mask_tokens=mode).eval()
        with torch.no_grad():
            for token in module.predictor.mask_tokens:
                token.normal_()
            outputs = module.forward_step(clip, step=0)
            out = outputs.generators[1][0]
            context = module.encoder(clip, token_idx=out.masks.context, hierarchical=True)
            with_token_0, _ = module.predictor(context, out.masks.context, out.masks.target,
                                               outputs.grid, mask_index=0)
        assert torch.allclose(out.predictions, with_token_0) == (mode == "shared"), mode
    with pytest.raises(ValueError, match="mask_tokens"):
        tiny_module(mask_tokens="per_sample")


def test_online_target_has_gradient_and_is_what_gets_evaluated(tiny_module):
    module = tiny_module(target_encoder="online")
    assert module.target_encoder is None and module.eval_encoder is module.encoder
    assert module.target_features(torch.randn(1, 3, 8, 32, 32)).requires_grad
    assert tiny_module().eval_encoder is not tiny_module().encoder


def test_weight_decay_only_on_weights(tiny_module):
    module = tiny_module()
    groups = module.configure_optimizers()["optimizer"].param_groups
    decayed = {id(p) for p in groups[0]["params"]}
    for name, p in module.named_parameters():
        if p.requires_grad:
            assert (id(p) in decayed) == (p.ndim > 1 and not name.endswith(".bias")), name
    assert groups[0]["weight_decay"] == 0.04 and groups[1]["weight_decay"] == 0.0


def test_duplicate_objective_names_are_refused(tiny_module):
    with pytest.raises(ValueError, match="delta"):
        tiny_module(objectives=[Delta(), Delta()])





def test_ema_follows_online_encoder_after_each_optimizer_step(tiny_module, fit_synthetic):
    L.seed_everything(0)
    module = tiny_module(ema_momentum=0.5)
    before = module.target_encoder.blocks[0].attn.qkv.weight.clone()
    trainer, _ = fit_synthetic(module, steps=2)
    assert trainer.global_step == 2
    after = module.target_encoder.blocks[0].attn.qkv.weight
    assert not torch.allclose(before, after)
    online = module.encoder.blocks[0].attn.qkv.weight
    assert (after - online).abs().mean() < (before - online).abs().mean()


@pytest.mark.slow
def test_loss_decreases_on_synthetic_video(tiny_module, fit_synthetic):
    L.seed_everything(0)
    module = tiny_module(ema_momentum=0.99, optimizer=OptimizerConfig(lr=1e-3, start_lr=1e-4, warmup_steps=5))
    _, losses = fit_synthetic(module, steps=30, crop_size=64)  # prediction loss (the context term ramps in half way)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.85 * first, (first, last)  # measured: 0.79 -> 0.62


@pytest.mark.slow
def test_bf16_mixed_runs_on_a_tiny_input(tiny_module, fit_synthetic):
    L.seed_everything(0)
    module = tiny_module(objectives=[Delta()], context_loss_start=0.0)
    trainer, losses = fit_synthetic(module, steps=1, precision="bf16-mixed", num_clips=10, batch_size=2)
    assert trainer.global_step == 1 and torch.isfinite(torch.tensor(losses)).all()


@pytest.mark.slow
def test_checkpoint_records_the_encoder_to_evaluate(tiny_module):
    for mode, expected in (("ema", "target_encoder"), ("online", "encoder")):
        checkpoint = {}
        tiny_module(target_encoder=mode).on_save_checkpoint(checkpoint)
        assert checkpoint["jepa_lit"]["eval_encoder"] == expected
        rebuilt = VisionTransformer(**checkpoint["jepa_lit"]["encoder_config"])
        assert rebuilt.depth == 4 and rebuilt.embed_dim == 192


@pytest.mark.slow
def test_incompatible_clip_settings_fail_before_training_naming_the_keys(tiny_module):
    with pytest.raises(ValueError, match=r"data.init_args.num_frames=7 .*tubelet_size=2"):
        tiny_module().check_data_fits(SyntheticMotionDataModule(num_frames=7))
    with pytest.raises(ValueError, match=r"data.init_args.crop_size=100 .*patch_size=16"):
        tiny_module().check_data_fits(SyntheticMotionDataModule(crop_size=100))


@pytest.mark.slow
def test_validation_loss_weights_follow_the_run_schedule(tiny_module, fit_synthetic):
    """Validation draws fixed masks per batch, but its context weight is the run's at this step (the
    ramp 0 -> 0.5 ends half-way through 4 steps; batch 0 alone would give weight 0)."""
    L.seed_everything(0)
    module = tiny_module(context_loss_start=0.25, context_loss_end=0.5)
    trainer, _ = fit_synthetic(module, steps=4)
    assert module.context_weight_at(0) == 0.0 and module.context_weight_at(trainer.global_step) == 0.5
    logged = {}
    module.log_dict = lambda metrics, **kwargs: logged.update(metrics)
    module.log = lambda *args, **kwargs: None
    batch = next(iter(trainer.datamodule.val_dataloader()))
    with torch.no_grad():
        module.validation_step(batch, batch_idx=0)
    assert logged["val/context"] > 0


def test_checkpoints_carry_the_behaviour_version_and_resuming_across_it_warns(tiny_module):
    import jepa_lit

    module = tiny_module()
    checkpoint = {}
    module.on_save_checkpoint(checkpoint)
    assert checkpoint["jepa_lit"]["behaviour_version"] == jepa_lit.BEHAVIOUR_VERSION
    module.on_load_checkpoint(checkpoint)  # same version: silent
    del checkpoint["jepa_lit"]["behaviour_version"]  # written before the version existed
    with pytest.warns(UserWarning, match=f"behaviour version 1, this is {jepa_lit.BEHAVIOUR_VERSION}"):
        module.on_load_checkpoint(checkpoint)
