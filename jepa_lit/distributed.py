"""Batch statistics across DDP ranks, so a loss does not depend on how the batch is split.

DDP averages gradients over ranks. A per-rank loss ``sum_local / global_count * world_size`` therefore
trains exactly like ``sum_all / global_count`` on one process; ``gather`` concatenates a tensor from all
ranks keeping the gradient of the local part (the rest are constants, as in lightly's gathered losses).
Without an initialised process group every function is the identity.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def all_reduce_sum(value: Tensor) -> Tensor:
    """Sum over ranks of a tensor that needs no gradient (counts, totals)."""
    if not is_distributed():
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value


def gather(value: Tensor) -> Tensor:
    """Concatenate ``value`` [N, ...] from every rank along dim 0; gradient flows to the local part."""
    if not is_distributed():
        return value
    parts = [torch.zeros_like(value) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, value.detach().contiguous())
    parts[dist.get_rank()] = value
    return torch.cat(parts, dim=0)
