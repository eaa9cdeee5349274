"""The base recipe's losses on hand-computed tensors: the prediction L1 and the distance-weighted context loss."""

import math

import torch

from jepa_lit.losses import context_distance, context_loss, prediction_loss
from jepa_lit.masks.base import MaskPair
from jepa_lit.step import GeneratorOutputs, StepOutputs


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
