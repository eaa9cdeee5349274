"""Hard-region weighting (HW): an extra prediction loss that up-weights the tokens predicted worst.

Per sample and mask generator, over its K target tokens (z^ the prediction, h the target):

    e_i = mean_c |z^_ic - h_ic|            (detached)
    w   = K * softmax(e / tau)             (mean weight 1)
    L_HW = weight * mean_{i,c} w_i |z^_ic - h_ic|

averaged over the batch and the generators (with K = 1 the weight is 1: plain L1). It is added to the
base loss (L_pred is kept), so a token's effective weight is 1 + weight * w_i (spec section 4; study:
0.3, tau 1.0; 1.0 in HW-LD and FWM-HW-LD).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from jepa_lit.objectives.base import Objective
from jepa_lit.step import StepOutputs, mean_over_generators


class HardWeighting(Objective):
    name = "hw"

    def __init__(self, weight: float = 0.3, temperature: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature={temperature}; expected > 0")
        self.weight, self.temperature = weight, temperature

    def forward(self, outputs: StepOutputs) -> dict[str, Tensor]:
        def per_generator(g: int) -> Optional[Tensor]:
            error = outputs.prediction_error(g)  # [B, K, C]
            num_targets = error.shape[1]
            with torch.no_grad():
                token_error = error.mean(-1).float() / self.temperature
                weights = num_targets * torch.softmax(token_error, dim=1)
            return (weights.unsqueeze(-1).to(error.dtype) * error).mean()

        return {self.name: self.weight * mean_over_generators(outputs, per_generator)}
