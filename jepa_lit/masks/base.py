"""What every mask sampler returns and the interface the module calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist
from torch import Tensor

from jepa_lit.distributed import is_distributed
from jepa_lit.masks.groups import CutGroupSize, cut_groups
from jepa_lit.seeds import run_seed


@dataclass
class MaskPair:
    """One mask generator's split of the token grid for one cut group of the batch.

    context: [b, Kc] sorted flat token indices the encoder sees.
    target:  [b, Kt] sorted flat token indices the predictor must predict.
    rows: the local batch rows these lists belong to; None: every row of the batch, in order.
    weight: this group's share in a loss averaged over the groups (jepa_lit.masks.groups.cut_groups).
    group, num_groups: the group's id and G over the global batch (per-group statistics across processes).
    Both lists are cut to the group's minimum, so a few tokens of some samples are neither.
    """

    context: Tensor
    target: Tensor
    rows: Optional[Tensor] = None
    weight: float = 1.0
    group: int = 0
    num_groups: int = 1

    def to(self, device) -> "MaskPair":
        rows = None if self.rows is None else to_device(self.rows, device)
        return MaskPair(to_device(self.context, device), to_device(self.target, device), rows, self.weight,
                        self.group, self.num_groups)


def to_device(host: Tensor, device) -> Tensor:
    """A host tensor on ``device`` without making the host wait: a copy from pageable memory waits for the
    device's queue; from pinned memory with ``non_blocking`` it is queued behind the step's kernels. (The
    pinned block stays reserved until the copy is done: PyTorch's pinned-memory allocator records it.)"""
    if torch.device(device).type == "cuda":
        host = host.pin_memory()
    return host.to(device, non_blocking=True)  # a CPU run: the same tensor


class MaskSampler:
    """Base class: ``sampler(clip, grid, step) -> list[list[MaskPair]]``: per mask generator, one pair
    per cut group this process holds rows of (jepa_lit.masks.groups).

    Samples are a pure function of (seed, step, global sample index): a resumed run draws the same masks,
    and ``seed: None`` (the default) is the run's seed (jepa_lit.seeds);
    each DDP rank draws different ones, and a batch split over ranks gets the masks one process would
    draw for the whole batch (groups are defined on global sample indices; a group spread over ranks is
    cut to its minimum over them). The module calls ``set_rank`` at setup.
    """

    seed: Optional[int] = None
    cut_group_size: CutGroupSize = 8
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

    def cut(self, target_masks: Tensor, device: torch.device, max_keep: Optional[int] = None) -> list[MaskPair]:
        """Boolean target masks [B, T', H', W'] -> one MaskPair per cut group this process holds, each
        cut to its group's minimum counts (over every process holding rows of it), on ``device``."""
        groups = cut_groups(target_masks.shape[0], self.cut_group_size, self.rank, self.world_size)
        sorted_idx, num_context, num_targets = split_by_target(target_masks)
        big = sorted_idx.shape[1] + 1  # above any count: the groups this process does not hold
        keep = torch.full((groups.num_groups, 2), big, dtype=torch.long)
        for k, rows in zip(groups.ids, groups.rows):
            picked = slice(None) if rows is None else rows
            keep[k] = torch.stack([num_context[picked].min(), num_targets[picked].min()])
        if groups.spans_processes and self.world_size > 1 and is_distributed():
            keep = keep.to(device)  # the clip's device: what the process group's backend reduces
            dist.all_reduce(keep, op=dist.ReduceOp.MIN)
            keep = keep.cpu()
        pairs = []
        for k, rows, weight in zip(groups.ids, groups.rows, groups.weights):
            picked = slice(None) if rows is None else rows
            keep_context, keep_target = int(keep[k, 0]), int(keep[k, 1])
            if max_keep is not None:
                keep_context = min(keep_context, max_keep)
            pair = cut_lists(sorted_idx[picked], num_context[picked], keep_context, keep_target)
            pairs.append(MaskPair(pair.context, pair.target, rows, weight, k, groups.num_groups).to(device))
        return pairs

    def __call__(self, clip: Tensor, grid: tuple[int, int, int], step: int) -> list[list[MaskPair]]:
        raise NotImplementedError


def _mix(*values: int) -> int:
    """A 63-bit seed from several integers (large odd multipliers keep the streams apart)."""
    mixed = 0
    for value in values:
        mixed = (mixed * 6_364_136_223_846_793_005 + value * 1_442_695_040_888_963_407 + 1) % (2**63 - 1)
    return mixed


def split_by_target(target_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Boolean target masks [B, T', H', W'] -> (flat indices [B, N], each row its context tokens then its
    targets, both sorted; context counts [B]; target counts [B])."""
    flat = target_mask.flatten(1)
    batch, num_tokens = flat.shape
    order = torch.arange(num_tokens).expand(batch, -1)
    # Sorting by (is_target, index) puts each sample's context first and its targets after, both sorted.
    key = flat.long() * num_tokens + order
    sorted_idx = key.sort(dim=1).indices
    num_targets = flat.sum(1)
    return sorted_idx, num_tokens - num_targets, num_targets


def cut_lists(sorted_idx: Tensor, num_context: Tensor, keep_context: int, keep_target: int) -> MaskPair:
    """The first ``keep_context`` context and ``keep_target`` target tokens of each row (the lists are
    sorted, so cutting drops the latest / bottom-right tokens of the longer samples)."""
    context = sorted_idx[:, :keep_context]
    starts = num_context.unsqueeze(1) + torch.arange(keep_target).unsqueeze(0)
    return MaskPair(context=context, target=torch.gather(sorted_idx, 1, starts))


def masks_to_indices(target_mask: Tensor, max_keep: Optional[int] = None) -> MaskPair:
    """Boolean target masks [B, T', H', W'] -> index lists cut to this batch's minimum (one group)."""
    sorted_idx, num_context, num_targets = split_by_target(target_mask)
    keep_context = int(num_context.min()) if max_keep is None else min(int(num_context.min()), max_keep)
    return cut_lists(sorted_idx, num_context, keep_context, int(num_targets.min()))
