"""Latent dynamics (LD): a head predicts the target's next-step change from the student token.

    g = Linear(C_in, hidden) -> GELU -> Linear(hidden, 4D)
    L_LD = weight * mean_P |g(Z_t) - dH_t|

with C_in = 4D (``reads: all``) or only the Z_dyn channels of FWM (``reads: dynamics``, FWM-LD and
FWM-HW-LD). With ``hard_weighting`` (HW-LD, FWM-HW-LD), over the N valid pairs of a softmax's population:

    e = |g(Z_t) - dH_t|,  w = N * softmax(mean_c e / tau) (detached),  L_LD = weight * mean(w e)

``softmax_scope`` says what that population is. "local" (default, the release's: each GPU's softmax ran
over its own batch of 8): each cut group's pairs (jepa_lit.masks.groups; with the default groups of 8 a
group is what one of the release's GPUs held), and L_LD is the mean over the groups with any pair. "global":
every pair of the whole batch, over all processes (jepa-lit's rule before issue 23). Both are defined on
global sample indices, so 1 x 32, 2 x 16 and 4 x 8 train alike (per-group maxima, sums and counts are
all-reduced as one [G] tensor each).

Per mask generator, averaged over the generators with any valid pair (docs/objectives.md, study: 1.0,
hidden 256). H is detached.

``released_no_grad`` reproduces the release's defect (docs/reproducing.md, the release's defects): its hard-weighted term was
computed under ``no_grad``, a constant, so the head never trained. Off by default; with it, the term
is that constant (the head and the encoder stay in the graph at zero weight, as DDP needs).
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
from torch import Tensor

from jepa_lit.distributed import all_reduce_max, all_reduce_sum, logsumexp, world_size
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
        softmax_scope: Literal["local", "global"] = "local",
    ):
        super().__init__()
        if released_no_grad and not hard_weighting:
            raise ValueError("released_no_grad reproduces the hard-weighted LD defect; it needs hard_weighting: true")
        if temperature <= 0:
            raise ValueError(f"temperature={temperature}; expected > 0")
        if softmax_scope not in ("local", "global"):
            raise ValueError(f"softmax_scope={softmax_scope!r}; expected 'local' (per cut group) or 'global'")
        self.softmax_scope = softmax_scope
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
            if self.softmax_scope == "local":
                with torch.no_grad():
                    row_group, num_groups = group_of_rows(outputs, g)
                    shares, groups_with_pairs = group_softmax(error.mean(-1).float() / self.temperature, pairs,
                                                              row_group, num_groups)
                # this process's part of the mean over groups of sum_p s_p mean_c e_p (DDP averages the W parts)
                value = (shares.to(error.dtype) * error.mean(-1)).sum() * world_size()
                return value / groups_with_pairs.clamp_min(1.0), groups_with_pairs > 0
            with torch.no_grad():  # softmax over the pairs of the whole batch (every rank's, under DDP)
                scores = error.mean(-1).float() / self.temperature
                shares = torch.where(pairs, (scores - logsumexp(scores, pairs)).exp(), 0.0)  # 0 off the pairs
                weights = outputs.pair_count(g) * world_size() * shares
            return outputs.pair_mean(g, weights.unsqueeze(-1).to(error.dtype) * error)

        value = mean_over_generators(outputs, per_generator)
        if self.released_no_grad:  # a constant (detached here, not under no_grad: the grids are cached)
            value = value.detach() + outputs.zero()
        return {self.name: self.weight * value + zero_on(self.head)}


def group_of_rows(outputs: StepOutputs, g: int) -> tuple[Tensor, int]:
    """The cut group of each local batch row of generator ``g`` ([B] long) and G, the groups of the global batch."""
    groups = outputs.generators[g]
    batch = outputs.target.shape[0]
    row_group = torch.zeros(batch, dtype=torch.long, device=outputs.target.device)
    for out in groups:
        row_group[slice(None) if out.masks.rows is None else out.masks.rows] = out.masks.group
    return row_group, groups[0].masks.num_groups


def group_softmax(scores: Tensor, pairs: Tensor, row_group: Tensor, num_groups: int,
                  reduce_max: Callable[[Tensor], Tensor] = all_reduce_max,
                  reduce_sum: Callable[[Tensor], Tensor] = all_reduce_sum) -> tuple[Tensor, Tensor]:
    """softmax of ``scores`` [B, ...] over the True entries of ``pairs`` of each group (rows' groups ``row_group``
    [B], G = ``num_groups``, rows of a group possibly on several processes); 0 off the pairs. Returns (shares,
    the number of groups with any pair, a device scalar). Three collectives of [G] (max, sums and counts)
    whatever the layout; no host sync."""
    batch = scores.shape[0]
    flat_scores, flat_pairs = scores.reshape(batch, -1), pairs.reshape(batch, -1)
    row_peak = flat_scores.masked_fill(~flat_pairs, float("-inf")).amax(dim=1)  # -inf for a row without pairs
    peak = torch.full((num_groups,), float("-inf"), device=scores.device)
    peak = reduce_max(peak.scatter_reduce(0, row_group, row_peak, reduce="amax"))
    peak = torch.where(torch.isinf(peak), 0.0, peak)  # a group without pairs: nothing to normalise
    exp = torch.where(flat_pairs, (flat_scores - peak[row_group].unsqueeze(1)).exp(), 0.0)
    totals = torch.zeros(2, num_groups, device=scores.device)
    totals[0].index_add_(0, row_group, exp.sum(dim=1))
    totals[1].index_add_(0, row_group, flat_pairs.sum(dim=1).float())
    sums, counts = reduce_sum(totals)
    shares = exp / torch.where(sums > 0, sums, 1.0)[row_group].unsqueeze(1)
    return shares.view_as(scores), (counts > 0).sum().float()
