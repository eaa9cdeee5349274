"""Delta prediction: the student's temporal differences should match the target's.

    L_delta = weight * mean_P |dZ_t - dH_t|

over valid pairs P_t = V_t and V_{t+1} and all channels, per mask generator, averaged over the
generators with any valid pair (study coefficient 0.5). dH is detached, also when the target is the
online encoder (no-EMA runs), as in the study's release: the term trains the student only.
"""

from __future__ import annotations

from torch import Tensor

from jepa_lit.objectives.base import Objective
from jepa_lit.step import StepOutputs, mean_over_generators


class Delta(Objective):
    name = "delta"

    def __init__(self, weight: float = 0.5):
        super().__init__()
        self.weight = weight

    def forward(self, outputs: StepOutputs) -> dict[str, Tensor]:
        target_diff = outputs.target_diff().detach()

        def per_generator(g: int) -> tuple[Tensor, Tensor]:
            return outputs.pair_mean(g, (outputs.student_diff(g) - target_diff).abs())

        return {self.name: self.weight * mean_over_generators(outputs, per_generator)}
