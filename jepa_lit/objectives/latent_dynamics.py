"""Latent dynamics (LD): a head predicts the target's next-step change from the student token.

    g = Linear(C_in, hidden) -> GELU -> Linear(hidden, 4D)
    L_LD = weight * mean_P |g(Z_t) - dH_t|

with C_in = 4D (``reads: all``) or only the Z_dyn channels of FWM (``reads: dynamics``, FWM-LD and
FWM-HW-LD). With ``hard_weighting`` (HW-LD, FWM-HW-LD), over the N valid pairs of the batch:

    e = |g(Z_t) - dH_t|,  w = N * softmax(mean_c e / tau) (detached),  L_LD = weight * mean(w e)

Per mask generator, averaged over the generators with any valid pair (docs/objectives.md, study: 1.0,
hidden 256). H is detached.

``released_no_grad`` reproduces the release's defect (docs/reproducing.md, the release's defects): its hard-weighted term was
computed under ``no_grad``, a constant, so the head never trained. Off by default; with it, the term
is that constant (the head and the encoder stay in the graph at zero weight, as DDP needs).
"""

from __future__ import annotations

import torch
from torch import Tensor

from jepa_lit.distributed import logsumexp, world_size
from jepa_lit.objectives.base import Objective
from jepa_lit.objectives.heads import Reads, check_reads, check_width, grid_inputs, head_input_dim, mlp_head, zero_on
from jepa_lit.step import StepOutputs, mean_over_generators


class LatentDynamics(Objective):
    name = "ld"

    def __init__(
        self,
        weight: float = 1.0,
        hidden_dim: int = 256,
        reads: Reads = "all",
        app_ratio: float = 0.5,
        hard_weighting: bool = False,
        temperature: float = 1.0,
        released_no_grad: bool = False,
    ):
        super().__init__()
        if released_no_grad and not hard_weighting:
            raise ValueError("released_no_grad reproduces the hard-weighted LD defect; it needs hard_weighting: true")
        if temperature <= 0:
            raise ValueError(f"temperature={temperature}; expected > 0")
        self.weight, self.reads, self.app_ratio = weight, reads, app_ratio
        self.hard_weighting, self.temperature, self.released_no_grad = hard_weighting, temperature, released_no_grad
        self.hidden_dim = hidden_dim
        check_reads(reads)

    def build_heads(self, width: int) -> None:
        self.head = mlp_head(head_input_dim(width, self.reads, self.app_ratio), self.hidden_dim, width)

    def forward(self, outputs: StepOutputs) -> dict[str, Tensor]:
        check_width(self, outputs)
        target_diff = outputs.target_diff().detach()

        def per_generator(g: int) -> tuple[Tensor, Tensor]:
            z = grid_inputs(outputs, g, self.reads, self.app_ratio)
            error = (self.head(z) - target_diff).abs()  # [B, T'-1, H', W', 4D], read at the valid pairs
            if not self.hard_weighting:
                return outputs.pair_mean(g, error)
            pairs = outputs.valid_pairs(g)
            with torch.no_grad():  # softmax over the pairs of the whole batch (every rank's, under DDP)
                scores = error.mean(-1).float() / self.temperature
                shares = torch.where(pairs, (scores - logsumexp(scores, pairs)).exp(), 0.0)  # 0 off the pairs
                weights = outputs.pair_count(g) * world_size() * shares
            return outputs.pair_mean(g, weights.unsqueeze(-1).to(error.dtype) * error)

        value = mean_over_generators(outputs, per_generator)
        if self.released_no_grad:  # a constant (detached here, not under no_grad: the grids are cached)
            value = value.detach() + outputs.zero()
        return {self.name: self.weight * value + zero_on(self.head)}
