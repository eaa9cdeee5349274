"""The run's schedules: learning rate (warm-up, constant or cosine), weight decay, EMA momentum, context-loss ramp."""

import pytest

from jepa_lit.schedules import OptimizerConfig, ema_momentum_at, linear_ramp


def test_lr_warmup_then_constant_or_cosine():
    """Optimizer step i trains at the schedule's value at i + 1, as the study's release (its scheduler
    advances before each step)."""
    opt = OptimizerConfig(lr=6e-4, start_lr=1e-4, warmup_steps=300)
    assert opt.lr_at(0, 30000) == pytest.approx(1e-4 + 5e-4 / 300)  # already one warm-up step in
    assert opt.lr_at(149, 30000) == pytest.approx(3.5e-4)
    assert opt.lr_at(298, 30000) < 6e-4
    assert opt.lr_at(299, 30000) == pytest.approx(6e-4) and opt.lr_at(29999, 30000) == pytest.approx(6e-4)
    cos = OptimizerConfig(lr=1.0, start_lr=0.0, warmup_steps=10, lr_schedule="cosine", final_lr=0.0)
    assert cos.lr_at(9, 110) == pytest.approx(1.0) and cos.lr_at(59, 110) == pytest.approx(0.5)
    assert cos.lr_at(109, 110) == pytest.approx(0.0)


def test_the_modules_scheduler_trains_step_i_at_the_schedules_value_at_i_plus_1():
    from jepa_lit.models import VisionTransformer
    from jepa_lit.module import JEPAModule

    optim = OptimizerConfig(lr=6e-4, start_lr=1e-4, warmup_steps=4)
    module = JEPAModule(VisionTransformer(size="tiny", depth=1, num_frames=2, img_size=32), optimizer=optim,
                        predictor_width=16, predictor_depth=1, predictor_heads=2)
    config = module.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    seen = []
    for _ in range(5):  # Lightning steps the scheduler after each optimizer step ("interval": "step")
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([2.25e-4, 3.5e-4, 4.75e-4, 6e-4, 6e-4])


def test_weight_decay_and_ema_schedules():
    opt = OptimizerConfig(weight_decay=0.04)
    assert opt.weight_decay_at(500, 1000) == 0.04
    sched = OptimizerConfig(weight_decay=0.04, final_weight_decay=0.4)
    assert sched.weight_decay_at(499, 1000) == pytest.approx(0.22)  # the schedule at step + 1
    assert ema_momentum_at(10, 100, 0.99925, None) == 0.99925
    assert ema_momentum_at(50, 100, 0.998, 1.0) == pytest.approx(0.999)


def test_context_loss_ramp():
    assert linear_ramp(14999, 15000, 30000, 0.5) == 0.0
    assert linear_ramp(22500, 15000, 30000, 0.5) == pytest.approx(0.25)
    assert linear_ramp(40000, 15000, 30000, 0.5) == 0.5
