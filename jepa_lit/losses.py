"""The base V-JEPA 2.1 loss: L1 prediction loss on the targets + distance-weighted dense context loss.

    L_pred = mean over generators of mean |z_pred - h[target]|            (tokens and channels)
    L_ctx  = mean over generators of mean_i |z_ctx_i - h[context_i]| / d_i  (d_i = sqrt(distance from
             context token i to the nearest target token, in (t, h, w) token units))
    L_base = L_pred + lambda(step) * L_ctx

Each generator's means are taken per cut group and averaged over the groups (as the study's release
averaged its per-GPU losses; jepa_lit.masks.groups): a process adds its groups' means times their weights.
"""

from __future__ import annotations

import torch
from torch import Tensor

from jepa_lit.models.positions import token_coordinates
from jepa_lit.step import StepOutputs, gather_tokens

def context_distance(context_idx: Tensor, target_idx: Tensor, grid: tuple[int, int, int]) -> Tensor:
    """d_i = sqrt(min Euclidean distance from each context token to any target token): [B, Kc].

    Vectorised with cdist (the study's release looped over context tokens in Python).
    """
    context_pos = token_coordinates(context_idx, grid)
    target_pos = token_coordinates(target_idx, grid)
    return torch.cdist(context_pos, target_pos).amin(dim=-1).sqrt()


def prediction_loss(outputs: StepOutputs) -> Tensor:
    return torch.stack([
        sum(out.masks.weight * error.mean() for out, error in zip(outputs.generators[g], outputs.prediction_error(g)))
        for g in range(len(outputs.generators))
    ]).mean()


def context_loss(outputs: StepOutputs) -> Tensor:
    losses = []
    for groups in outputs.generators:
        loss = 0.0
        for out in groups:
            distance = context_distance(out.masks.context, out.masks.target, outputs.grid)
            error = (out.context_predictions - gather_tokens(outputs.part_target(out), out.masks.context)).abs()
            loss = loss + out.masks.weight * (error / distance.unsqueeze(-1)).mean()
        losses.append(loss)
    return torch.stack(losses).mean()
