"""Kinematic regularisers: penalise how fast (or how unevenly) the target features move in time.

Over all tokens of the target grid H (its first ``channel_fraction`` of the 4D channels):

    l1:           L = weight * mean |dH_t|
    huber:        L = weight * mean Huber(dH_t; delta),  Huber(x) = x^2 / 2 if |x| < delta else delta (|x| - delta / 2)
    acceleration: L = weight * mean |H_{t+2} - 2 H_{t+1} + H_t|    (needs T' >= 3; shorter is an error)

Study variants (UCF-101 regime, docs/objectives.md): Kin-L1 (weight 1.0 and 0.1), Kin-Huber (0.1, delta
0.1), Kin-Accel (0.1), Kin-Split (Kin-Accel, channel_fraction 0.5), Kin-Anneal (Kin-Accel with
weight * (1 + cos(pi * e / E)) / 2). The release annealed per epoch of its 100 x 300-step run; here
e = floor(step * anneal_epochs / max_steps), E = anneal_epochs, the same decay for any run length.

All study runs use ``model.target_encoder: online``: H is then the online encoder on the full clip,
with gradient. With an EMA target H is detached and the term is a constant (a warning says so).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from jepa_lit.objectives.base import Objective
from jepa_lit.step import StepOutputs, temporal_diff


class Kinematic(Objective):
    name = "kinematic"

    def __init__(
        self,
        weight: float = 1.0,
        penalty: Literal["l1", "huber", "acceleration"] = "l1",
        huber_delta: float = 0.1,
        channel_fraction: float = 1.0,
        anneal: bool = False,
        anneal_epochs: int = 100,
    ):
        super().__init__()
        if penalty not in ("l1", "huber", "acceleration"):
            raise ValueError(f"penalty={penalty!r}; expected 'l1', 'huber' or 'acceleration'")
        if not 0.0 < channel_fraction <= 1.0:
            raise ValueError(f"channel_fraction={channel_fraction}; expected a fraction in (0, 1]")
        self.weight, self.penalty, self.huber_delta = weight, penalty, huber_delta
        self.channel_fraction, self.anneal, self.anneal_epochs = channel_fraction, anneal, anneal_epochs

    def weight_at(self, step: int, max_steps: int) -> float:
        if not self.anneal:
            return self.weight
        epoch = min(step * self.anneal_epochs // max(1, max_steps), self.anneal_epochs)
        return self.weight * 0.5 * (1.0 + math.cos(math.pi * epoch / self.anneal_epochs))

    def forward(self, outputs: StepOutputs) -> dict[str, Tensor]:
        if torch.is_grad_enabled() and not outputs.target.requires_grad:
            rank_zero_warn("Kinematic on a detached (EMA) target is a constant; set model.target_encoder: online")
        diff = outputs.target_diff()
        diff = diff[..., : int(diff.shape[-1] * self.channel_fraction)]
        if self.penalty == "acceleration":
            if diff.shape[1] < 2:
                raise ValueError(f"Kinematic acceleration needs T' >= 3 token time steps, got grid {outputs.grid}")
            value = temporal_diff(diff).abs().mean()
        elif self.penalty == "huber":
            value = F.huber_loss(diff, torch.zeros_like(diff), delta=self.huber_delta)
        else:
            value = diff.abs().mean()
        return {self.name: self.weight_at(outputs.step, outputs.max_steps) * value}
