import math

import pytest
import torch

from jepa_lit.losses import context_distance, context_loss, prediction_loss
from jepa_lit.masks.base import MaskPair
from jepa_lit.objectives import Delta, GeneratorOutputs, StepOutputs
from jepa_lit.schedules import OptimizerConfig, ema_momentum_at, linear_ramp


def make_outputs(target, generators, grid, embed_dim, num_levels=1):
    return StepOutputs(clip=torch.zeros(1), target=target, generators=generators, grid=grid,
                       embed_dim=embed_dim, num_levels=num_levels)


def test_context_distance_is_sqrt_of_nearest_euclidean():
    grid = (2, 2, 3)  # tokens: t*6 + h*3 + w
    context = torch.tensor([[0, 11]])  # (0,0,0) and (1,1,2)
    target = torch.tensor([[2, 9]])  # (0,0,2) and (1,1,0)
    d = context_distance(context, target, grid)
    assert torch.allclose(d, torch.tensor([[2.0 ** 0.25, 2.0 ** 0.25]]))  # both nearest sqrt(2) away
    d = context_distance(torch.tensor([[0]]), torch.tensor([[10]]), grid)  # (1,1,1): sqrt(3) away
    assert torch.allclose(d, torch.tensor([[3.0 ** 0.25]]))


def test_base_losses_on_hand_computed_tensors():
    grid = (1, 1, 3)
    target = torch.tensor([[[1.0, 2.0], [0.0, 0.0], [3.0, -1.0]]])  # H for tokens 0, 1, 2
    gen = GeneratorOutputs(
        masks=MaskPair(context=torch.tensor([[0]]), target=torch.tensor([[2]])),
        context=torch.zeros(1, 1, 2),
        predictions=torch.tensor([[[2.0, 1.0]]]),  # |2-3| + |1+1| = 3 -> mean 1.5
        context_predictions=torch.tensor([[[1.0, 4.0]]]),  # |0| + |2| = 2 -> mean 1, / sqrt(2)
    )
    gen2 = GeneratorOutputs(
        masks=MaskPair(context=torch.tensor([[1]]), target=torch.tensor([[0]])),
        context=torch.zeros(1, 1, 2),
        predictions=torch.tensor([[[1.0, 2.0]]]),  # exact -> 0
        context_predictions=torch.tensor([[[1.0, 1.0]]]),  # |1| + |1| -> mean 1, distance 1 -> d 1
    )
    outputs = make_outputs(target, [[gen], [gen2]], grid, embed_dim=2)
    assert torch.allclose(prediction_loss(outputs), torch.tensor((1.5 + 0.0) / 2))
    expected_ctx = (1.0 / math.sqrt(2.0) + 1.0) / 2  # distances 2 and 1
    assert torch.allclose(context_loss(outputs), torch.tensor(expected_ctx))


def test_delta_objective_known_value():
    grid = (2, 1, 2)  # tokens (t, w): 0=(0,0) 1=(0,1) 2=(1,0) 3=(1,1)
    target = torch.tensor([[[0.0], [1.0], [2.0], [5.0]]])
    context = torch.tensor([[[1.0], [7.0], [4.0]]], requires_grad=True)  # Z at tokens 0, 1, 2
    gen = GeneratorOutputs(MaskPair(torch.tensor([[0, 1, 2]]), torch.tensor([[3]])), context,
                           torch.zeros(1, 1, 1), torch.zeros(1, 3, 1))
    outputs = make_outputs(target, [[gen]], grid, embed_dim=1)
    # Only w=0 is visible at both t: dZ = 4 - 1 = 3, dH = 2 - 0 = 2 -> |3 - 2| = 1, times weight 0.5.
    loss = Delta(weight=0.5)(outputs)["delta"]
    assert torch.allclose(loss, torch.tensor(0.5))
    loss.backward()
    assert context.grad.abs().sum() > 0


def test_delta_detaches_the_target_even_when_it_is_the_online_encoder():
    """No-EMA runs: the target has gradient, but Delta trains only the student (the study's release)."""
    grid = (2, 1, 2)
    target = torch.tensor([[[0.0], [1.0], [2.0], [5.0]]], requires_grad=True)
    context = torch.tensor([[[1.0], [7.0], [4.0]]], requires_grad=True)
    gen = GeneratorOutputs(MaskPair(torch.tensor([[0, 1, 2]]), torch.tensor([[3]])), context,
                           torch.zeros(1, 1, 1), torch.zeros(1, 3, 1))
    Delta(weight=0.5)(make_outputs(target, [[gen]], grid, embed_dim=1))["delta"].backward()
    assert target.grad is None and context.grad.abs().sum() > 0


def test_delta_with_no_valid_pairs_is_zero_and_attached():
    grid = (2, 1, 1)
    context = torch.ones(1, 1, 1, requires_grad=True)
    gen = GeneratorOutputs(MaskPair(torch.tensor([[0]]), torch.tensor([[1]])), context, torch.zeros(1, 1, 1),
                           torch.zeros(1, 1, 1))
    loss = Delta()(make_outputs(torch.zeros(1, 2, 1), [[gen]], grid, embed_dim=1))["delta"]
    assert loss.item() == 0.0 and loss.requires_grad


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


def test_hard_weighting_skips_a_generator_with_fewer_than_2_targets():
    """As the study's release: one target token has nothing to up-weight; that generator is left out."""
    from jepa_lit.objectives import HardWeighting

    grid = (1, 1, 4)
    target = torch.tensor([[[1.0], [2.0], [0.0], [4.0]]])
    one = GeneratorOutputs(MaskPair(torch.tensor([[0, 1, 2]]), torch.tensor([[3]])), torch.zeros(1, 3, 1),
                           torch.tensor([[[0.0]]]), torch.zeros(1, 3, 1))  # |0 - 4| = 4: plain L1 if counted
    two = GeneratorOutputs(MaskPair(torch.tensor([[0, 1]]), torch.tensor([[2, 3]])), torch.zeros(1, 2, 1),
                           torch.tensor([[[1.0], [4.0]]]), torch.zeros(1, 2, 1))  # errors 1 and 0
    weights = 2 * torch.softmax(torch.tensor([1.0, 0.0]), 0)
    expected = 0.3 * (weights[0] * 1.0 + weights[1] * 0.0) / 2
    assert torch.allclose(HardWeighting(weight=0.3)(make_outputs(target, [[one], [two]], grid, 1))["hw"], expected)
    alone = HardWeighting(weight=0.3)(make_outputs(target, [[one]], grid, 1))["hw"]
    assert alone.item() == 0.0  # no generator left: zero


def test_velocity_gate_skips_a_single_time_step_with_a_warning():
    from jepa_lit.objectives import VelocityGate

    grid = (1, 1, 2)
    context = torch.ones(1, 1, 1, requires_grad=True)
    gen = GeneratorOutputs(MaskPair(torch.tensor([[0]]), torch.tensor([[1]])), context, torch.zeros(1, 1, 1),
                           torch.zeros(1, 1, 1))
    gate = VelocityGate()
    with pytest.warns(UserWarning, match="single time step"):
        loss = gate(make_outputs(torch.zeros(1, 2, 1), [[gen]], grid, embed_dim=1))["velgate"]
    assert loss.item() == 0.0 and loss.requires_grad
