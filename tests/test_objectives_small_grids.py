"""Objectives on the smallest grids that show one behaviour each (hand-computed): Delta's value and its
detached target, no valid pairs, HardWeighting's lone-target generator, VelocityGate's single time step."""

import pytest
import torch

from jepa_lit.masks.base import MaskPair
from jepa_lit.objectives import Delta, HardWeighting, VelocityGate
from jepa_lit.step import GeneratorOutputs, StepOutputs


def make_outputs(target, generators, grid, embed_dim, num_levels=1):
    return StepOutputs(clip=torch.zeros(1), target=target, generators=generators, grid=grid,
                       embed_dim=embed_dim, num_levels=num_levels)


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


def test_hard_weighting_skips_a_generator_with_fewer_than_2_targets():
    """As the study's release: one target token has nothing to up-weight; that generator is left out."""
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
    grid = (1, 1, 2)
    context = torch.ones(1, 1, 1, requires_grad=True)
    gen = GeneratorOutputs(MaskPair(torch.tensor([[0]]), torch.tensor([[1]])), context, torch.zeros(1, 1, 1),
                           torch.zeros(1, 1, 1))
    gate = VelocityGate()
    with pytest.warns(UserWarning, match="single time step"):
        loss = gate(make_outputs(torch.zeros(1, 2, 1), [[gen]], grid, embed_dim=1))["velgate"]
    assert loss.item() == 0.0 and loss.requires_grad
