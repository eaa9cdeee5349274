"""What every mask sampler returns and the interface the module calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.distributed as dist
from torch import Tensor

from jepa_lit.distributed import is_distributed
from jepa_lit.seeds import run_seed


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

    Samples are a pure function of (seed, step, global sample index): a resumed run draws the same masks,
    and ``seed: None`` (the default) is the run's seed (jepa_lit.seeds);
    each DDP rank draws different ones, and a batch split over ranks gets the masks one process would
    draw for the whole batch (index lists are cut to the minimum over all ranks). The module calls
    ``set_rank`` at setup.
    """

    seed: Optional[int] = None
    rank: int = 0
    world_size: int = 1

    @property
    def num_generators(self) -> int:
        raise NotImplementedError

    def set_rank(self, rank: int, world_size: int = 1) -> None:
        self.rank, self.world_size = rank, world_size

    def rng(self, step: int) -> torch.Generator:
        """The step's generator, shared by all samples and ranks (block shapes)."""
        return torch.Generator().manual_seed(_mix(run_seed(self.seed), step))

    def sample_rng(self, step: int, generator_index: int, global_index: int) -> torch.Generator:
        """One sample's generator (block positions)."""
        return torch.Generator().manual_seed(_mix(run_seed(self.seed), step, generator_index + 1, global_index + 1))

    def global_min(self, counts: Tensor) -> Tensor:
        """Element-wise minimum of ``counts`` over the DDP ranks."""
        if self.world_size > 1 and is_distributed():
            dist.all_reduce(counts, op=dist.ReduceOp.MIN)
        return counts

    def __call__(self, clip: Tensor, grid: tuple[int, int, int], step: int) -> list[MaskPair]:
        raise NotImplementedError


def _mix(*values: int) -> int:
    """A 63-bit seed from several integers (large odd multipliers keep the streams apart)."""
    mixed = 0
    for value in values:
        mixed = (mixed * 6_364_136_223_846_793_005 + value * 1_442_695_040_888_963_407 + 1) % (2**63 - 1)
    return mixed


def masks_to_indices(
    target_mask: Tensor, max_keep: Optional[int] = None, reduce_min: Optional[Callable[[Tensor], Tensor]] = None
) -> MaskPair:
    """Boolean target masks [B, T', H', W'] -> index lists cut to the batch minimum.

    The lists are sorted, so cutting drops the latest / bottom-right tokens of the longer samples.
    ``reduce_min`` turns the local minimum counts into global ones (DDP).
    """
    flat = target_mask.flatten(1)
    batch, num_tokens = flat.shape
    order = torch.arange(num_tokens).expand(batch, -1)
    # Sorting by (is_target, index) puts each sample's context first and its targets after, both sorted.
    key = flat.long() * num_tokens + order
    sorted_idx = key.sort(dim=1).indices
    num_targets = flat.sum(1)
    num_context = num_tokens - num_targets
    keep = torch.stack([num_context.min(), num_targets.min()])
    if reduce_min is not None:
        keep = reduce_min(keep)
    keep_context, keep_target = int(keep[0]), int(keep[1])
    if max_keep is not None:
        keep_context = min(keep_context, max_keep)
    context = sorted_idx[:, :keep_context]
    starts = num_context.unsqueeze(1) + torch.arange(keep_target).unsqueeze(0)
    target = torch.gather(sorted_idx, 1, starts)
    return MaskPair(context=context, target=target)
