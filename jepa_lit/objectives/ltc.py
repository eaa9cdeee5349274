"""Latent temporal contrastive (LTC): the student token should match its own time's target better
than the next time's, by a margin.

At valid pairs P_t (cos: cosine similarity over the 4D channels):

    pos = cos(Z_t, H_t),  neg = cos(Z_t, H_{t+1})
    L_ltc = weight * mean_P max(0, margin - pos + neg)

per mask generator, averaged over the generators with any valid pair (docs/objectives.md; study: 0.5,
margin 0.5). H is detached.
"""

from __future__ import annotations

from typing import Optional

import torch.nn.functional as F
from torch import Tensor

from jepa_lit.objectives.base import Objective
from jepa_lit.step import StepOutputs, global_mean, mean_over_generators


class LatentTemporalContrastive(Objective):
    name = "ltc"

    def __init__(self, weight: float = 0.5, margin: float = 0.5):
        super().__init__()
        self.weight, self.margin = weight, margin

    def forward(self, outputs: StepOutputs) -> dict[str, Tensor]:
        target = outputs.target_grid().detach()

        def per_generator(g: int) -> Optional[Tensor]:
            pairs, count = outputs.valid_pairs(g), outputs.pair_count(g)
            if count == 0:
                return None
            z = outputs.student_grid(g)[:, :-1][pairs]
            pos = F.cosine_similarity(z, target[:, :-1][pairs], dim=-1)
            neg = F.cosine_similarity(z, target[:, 1:][pairs], dim=-1)
            return global_mean(F.relu(self.margin - pos + neg), count)

        return {self.name: self.weight * mean_over_generators(outputs, per_generator)}
