"""What every mask sampler returns and the interface the module calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor


@dataclass
class MaskPair:
    """One mask generator's split of the token grid for a batch.

    context: [B, Kc] sorted flat token indices the encoder sees.
    target:  [B, Kt] sorted flat token indices the predictor must predict.
    Both are cut to the batch minimum, so a few tokens of some samples are neither.
    """

    context: Tensor
    target: Tensor

    def to(self, device) -> "MaskPair":
        return MaskPair(self.context.to(device), self.target.to(device))


class MaskSampler:
    """Base class: ``sampler(clip, grid, step) -> list[MaskPair]``, one pair per mask generator.

    Samples are a pure function of (seed, rank, step), so a resumed run draws the same masks and each
    DDP rank draws different ones. The module calls ``set_rank`` at setup.
    """

    seed: int = 0
    rank: int = 0

    @property
    def num_generators(self) -> int:
        raise NotImplementedError

    def set_rank(self, rank: int) -> None:
        self.rank = rank

    def rng(self, step: int) -> torch.Generator:
        # Large odd multipliers keep (seed, rank, step) streams apart.
        mixed = (self.seed * 1_000_003 + self.rank * 7_919 + step * 104_729) % (2**63 - 1)
        return torch.Generator().manual_seed(mixed)

    def __call__(self, clip: Tensor, grid: tuple[int, int, int], step: int) -> list[MaskPair]:
        raise NotImplementedError


def masks_to_indices(target_mask: Tensor, max_keep: Optional[int] = None) -> MaskPair:
    """Boolean target masks [B, T', H', W'] -> index lists cut to the batch minimum.

    The lists are sorted, so cutting drops the latest / bottom-right tokens of the longer samples.
    """
    flat = target_mask.flatten(1)
    batch, num_tokens = flat.shape
    order = torch.arange(num_tokens).expand(batch, -1)
    # Sorting by (is_target, index) puts each sample's context first and its targets after, both sorted.
    key = flat.long() * num_tokens + order
    sorted_idx = key.sort(dim=1).indices
    num_targets = flat.sum(1)
    num_context = num_tokens - num_targets
    keep_context = int(num_context.min())
    if max_keep is not None:
        keep_context = min(keep_context, max_keep)
    keep_target = int(num_targets.min())
    context = sorted_idx[:, :keep_context]
    starts = num_context.unsqueeze(1) + torch.arange(keep_target).unsqueeze(0)
    target = torch.gather(sorted_idx, 1, starts)
    return MaskPair(context=context, target=target)
