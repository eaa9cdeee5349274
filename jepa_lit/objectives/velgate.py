"""Velocity gated (VelGate): keep the student still where the target is slow (the background).

With the target speed v_t = ||dH_t||_2 per token, a threshold per (sample, t) at the ``quantile`` of v
over the spatial positions (0.5: the median, interpolated as torch.quantile does), and the gate
g = [v_t <= threshold] (detached):

    L = weight * mean_P g |dZ_t|

(the mean runs over all valid pairs and channels, gated or not), per mask generator, averaged over
the generators with any valid pair (study: 1.0, quantile 0.5). A clip of a single token time step has
no speed: the term is skipped (zero, with a warning once), as the study's release does.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from jepa_lit.objectives.base import Objective
from jepa_lit.step import StepOutputs, mean_over_generators


class VelocityGate(Objective):
    name = "velgate"

    def __init__(self, weight: float = 1.0, quantile: float = 0.5):
        super().__init__()
        self.weight, self.quantile = weight, quantile
        self.warned = False

    def forward(self, outputs: StepOutputs) -> dict[str, Tensor]:
        if outputs.grid[0] < 2:
            if not self.warned:
                warnings.warn(f"velgate: the token grid {outputs.grid} has a single time step, so no target "
                              "speed; the term is skipped (0). Use more frames (num_frames / tubelet_size >= 2).")
                self.warned = True
            return {self.name: outputs.zero()}
        with torch.no_grad():
            speed = outputs.target_diff().float().norm(dim=-1)  # [B, T'-1, H', W']
            threshold = torch.quantile(speed.flatten(2), self.quantile, dim=-1)  # [B, T'-1]
            gate = (speed <= threshold[..., None, None]).unsqueeze(-1)

        def per_generator(g: int) -> tuple[Tensor, Tensor]:
            return outputs.pair_mean(g, gate * outputs.student_diff(g).abs())

        return {self.name: self.weight * mean_over_generators(outputs, per_generator)}
