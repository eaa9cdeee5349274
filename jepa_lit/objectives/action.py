"""Action conditioned (AC): a head predicts each token's pixel change (the "action") from the student.

The action of a token is its mean RGB (over the tubelet frames x patch pixels of the normalised clip)
at token time t+1 minus at t, a_t in R^3, without gradient. With a head

    q = Linear(C_in, hidden) -> GELU -> Linear(hidden, 3)
    L_ac = weight * mean_P |q(Z_t) - a_t|

C_in = 4D (``reads: all``) or only the Z_dyn channels of FWM (``reads: dynamics``, FAC). Per mask
generator, averaged over the generators with any valid pair (docs/objectives.md; study: 1.0, hidden 256).
"""

from __future__ import annotations

import torch
from einops import reduce
from torch import Tensor

from jepa_lit.objectives.base import Objective
from jepa_lit.objectives.heads import Reads, check_reads, check_width, grid_inputs, head_input_dim, mlp_head, zero_on
from jepa_lit.step import StepOutputs, mean_over_generators, temporal_diff


def token_actions(clip: Tensor, grid: tuple[int, int, int]) -> Tensor:
    """a_t: per-token mean RGB at t+1 minus at t, [B, T'-1, H', W', 3], fp32, no gradient."""
    t, h, w = grid
    with torch.no_grad():
        means = reduce(clip.float(), "b c (t pt) (h ph) (w pw) -> b t h w c", "mean", t=t, h=h, w=w)
        return temporal_diff(means)


class ActionConditioned(Objective):
    name = "ac"

    def __init__(
        self,
        weight: float = 1.0,
        hidden_dim: int = 256,
        reads: Reads = "all",
        app_ratio: float = 0.5,
    ):
        super().__init__()
        self.weight, self.reads, self.app_ratio, self.hidden_dim = weight, reads, app_ratio, hidden_dim
        check_reads(reads)

    def build_heads(self, width: int) -> None:
        self.head = mlp_head(head_input_dim(width, self.reads, self.app_ratio), self.hidden_dim, 3)

    def forward(self, outputs: StepOutputs) -> dict[str, Tensor]:
        check_width(self, outputs)
        actions = token_actions(outputs.clip, outputs.grid)

        def per_generator(g: int) -> tuple[Tensor, Tensor]:
            z = grid_inputs(outputs, g, self.reads, self.app_ratio)
            return outputs.pair_mean(g, (self.head(z) - actions.to(z.dtype)).abs())

        return {self.name: self.weight * mean_over_generators(outputs, per_generator) + zero_on(self.head)}
