"""Latent temporal contrastive (LTC): the student token should match its own time's target better
than the next time's, by a margin.

At valid pairs P_t (cos: cosine similarity over the 4D channels):

    pos = cos(Z_t, H_t),  neg = cos(Z_t, H_{t+1})
    L_ltc = weight * mean_P max(0, margin - pos + neg)

per mask generator, averaged over the generators with any valid pair (docs/objectives.md; study: 0.5,
margin 0.5). H is detached.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from jepa_lit.objectives.base import Objective
from jepa_lit.step import StepOutputs, mean_over_generators


class LatentTemporalContrastive(Objective):
    name = "ltc"

    def __init__(self, weight: float = 0.5, margin: float = 0.5):
        super().__init__()
        self.weight, self.margin = weight, margin

    def forward(self, outputs: StepOutputs) -> dict[str, Tensor]:
        target = outputs.target_grid().detach()

        def per_generator(g: int) -> tuple[Tensor, Tensor]:
            z = outputs.student_grid(g)[:, :-1]  # every position, read at the valid pairs
            pos = F.cosine_similarity(z, target[:, :-1], dim=-1)
            neg = F.cosine_similarity(z, target[:, 1:], dim=-1)
            return outputs.pair_mean(g, F.relu(self.margin - pos + neg))

        return {self.name: self.weight * mean_over_generators(outputs, per_generator)}
