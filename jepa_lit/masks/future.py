"""Future-predictive masking: see only the first part of the clip, predict everything else.

Multiblock-3D blocks are drawn as usual, then the context is limited to the first
max(1, floor(context_fraction * T')) token time steps, and the targets are the full complement of the
(batch-cut) context: all of the later time steps plus the masked blocks of the early ones
(docs/objectives.md; study: context_fraction 0.5, 4 short-range blocks of 15% and 1 long-range block of 70%).
MotionFuture places the blocks as MotionGuided does (Motion-Future: alpha 2.0, r 0.1).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from jepa_lit.masks.base import MaskPair
from jepa_lit.masks.groups import CutGroupSize
from jepa_lit.masks.motion_guided import MotionGuided, check_rate
from jepa_lit.masks.multiblock import BlockGenerator, MultiBlock3D


def future_generators() -> list[BlockGenerator]:
    return [
        BlockGenerator(num_blocks=4, spatial_scale=(0.15, 0.15)),
        BlockGenerator(num_blocks=1, spatial_scale=(0.7, 0.7)),
    ]


def full_complement(pair: MaskPair, num_tokens: int) -> MaskPair:
    """Targets = every token not in the context (the same count for every sample), sorted."""
    batch = pair.context.shape[0]
    visible = torch.zeros(batch, num_tokens, dtype=torch.bool, device=pair.context.device)
    visible.scatter_(1, pair.context, True)
    # The hidden positions of each row in index order: a stable sort puts the False (hidden) entries first,
    # in order. Their count per row is known on the host (every row has the same context length), so
    # nothing is read back from the device, as nonzero would.
    num_hidden = num_tokens - pair.context.shape[1]
    target = visible.to(torch.uint8).argsort(dim=1, stable=True)[:, :num_hidden]
    return MaskPair(context=pair.context, target=target, rows=pair.rows, weight=pair.weight, group=pair.group,
                    num_groups=pair.num_groups)


class FuturePredictive(MultiBlock3D):
    """Args:
        generators: the mask generators (default: the study's 4 x 0.15 and 1 x 0.7).
        context_fraction: the share of token time the context may come from.
        seed, max_keep, cut_group_size: as MultiBlock3D.
    """

    def __init__(
        self,
        generators: Optional[list[BlockGenerator]] = None,
        context_fraction: float = 0.5,
        seed: Optional[int] = None,
        max_keep: Optional[int] = None,
        cut_group_size: CutGroupSize = 8,
    ):
        if not 0.0 < context_fraction <= 1.0:
            raise ValueError(f"context_fraction={context_fraction}; expected a fraction in (0, 1]")
        generators = generators if generators is not None else future_generators()
        # keywords: cooperative with MotionFuture
        super().__init__(generators=generators, seed=seed, max_keep=max_keep, cut_group_size=cut_group_size)
        self.context_fraction = context_fraction

    def context_steps(self, grid: tuple[int, int, int]) -> int:
        return max(1, int(grid[0] * self.context_fraction))

    def __call__(self, clip: Tensor, grid: tuple[int, int, int], step: int) -> list[list[MaskPair]]:
        num_tokens = grid[0] * grid[1] * grid[2]
        return [[full_complement(pair, num_tokens) for pair in groups] for groups in super().__call__(clip, grid, step)]


class MotionFuture(FuturePredictive, MotionGuided):
    """Future-predictive masking with motion-guided block placement (Motion-Future).

    Args: as FuturePredictive, plus ``alpha`` and ``random_rate`` of MotionGuided.
    """

    def __init__(
        self,
        generators: Optional[list[BlockGenerator]] = None,
        context_fraction: float = 0.5,
        alpha: float = 2.0,
        random_rate: float = 0.1,
        seed: Optional[int] = None,
        max_keep: Optional[int] = None,
        cut_group_size: CutGroupSize = 8,
    ):
        super().__init__(generators, context_fraction, seed, max_keep, cut_group_size)  # FuturePredictive -> MotionGuided -> MultiBlock3D
        self.alpha, self.random_rate = alpha, check_rate(random_rate)
