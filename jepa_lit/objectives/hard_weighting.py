"""Hard-region weighting (HW): an extra prediction loss that up-weights the tokens predicted worst.

Per sample and mask generator, over its K target tokens (z^ the prediction, h the target):

    e_i = mean_c |z^_ic - h_ic|            (detached)
    w   = K * softmax(e / tau)             (mean weight 1)
    L_HW = weight * mean_{i,c} w_i |z^_ic - h_ic|

averaged over the batch (per cut group, as the base loss) and the generators. It is added to the base
loss (L_pred is kept), so a token's effective weight is 1 + weight * w_i (study: 0.3, tau 1.0; 1.0 in
HW-LD and FWM-HW-LD). As in the study's release, a cut group with fewer than 2 target tokens has nothing
to up-weight and is skipped, and a generator without any other group is left out of the average.
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
            value = None
            for out, error in zip(outputs.generators[g], outputs.prediction_error(g)):  # [b, K, C] per group
                num_targets = error.shape[1]
                if num_targets < 2:
                    continue
                with torch.no_grad():
                    token_error = error.mean(-1).float() / self.temperature
                    weights = num_targets * torch.softmax(token_error, dim=1)
                term = out.masks.weight * (weights.unsqueeze(-1).to(error.dtype) * error).mean()
                value = term if value is None else value + term
            return value

        return {self.name: self.weight * mean_over_generators(outputs, per_generator)}
