"""Batch statistics across DDP ranks, so a loss does not depend on how the batch is split.

DDP averages gradients over ranks. A per-rank loss ``sum_local / global_count * world_size`` therefore
trains exactly like ``sum_all / global_count`` on one process. A batch statistic over every rank's rows
(FWM's cross-covariance) is built from partial sums, all-reduced differentiably
(``all_reduce_sum_with_grad``): every rank computes the same statistic, the backward sums the ranks'
gradients onto each local part, and DDP's average brings it back to the one-process gradient. Rows are
not gathered (``gather`` remains for statistics that need the rows). Without an initialised process
group every function is the identity.
"""

from __future__ import annotations

import os
from typing import Optional, Union

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


def all_reduce_max(value: Tensor) -> Tensor:
    """Elementwise maximum over ranks of a tensor that needs no gradient."""
    if not is_distributed():
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return value


def union_means(*values: Tensor) -> tuple[list[Tensor], Union[int, Tensor]]:
    """The means over every rank's rows of each ``value`` [n, C_k] (the same n rows) as [1, C_k], and the
    union's row count, from partial sums: one all-reduce of sum C_k + 1 numbers, no rows exchanged. Without
    DDP: ``value.mean(0)`` and the host count n. Under DDP the means carry no gradient and the count is a
    device tensor (reading it would make the host wait). A centred sum over the union, sum_i (x_i - mean),
    has zero gradient through the mean, so detaching it changes no gradient."""
    if not is_distributed():
        return [value.mean(0, keepdim=True) for value in values], values[0].shape[0]
    rows = values[0].shape[0]
    count = values[0].new_full((1,), rows).detach()  # a fill on the device: no host -> device copy
    totals = all_reduce_sum(torch.cat([value.detach().sum(0) for value in values] + [count]))
    count = totals[-1]
    means = (totals[:-1] / count.clamp(min=1)).split([value.shape[1] for value in values])
    return [mean.unsqueeze(0) for mean in means], count


def all_reduce_sum_with_grad(value: Tensor) -> Tensor:
    """Sum of ``value`` over the ranks, differentiably: the backward sums the ranks' gradients, so a statistic
    every rank computes from the same sum gets, after DDP's mean, the gradient one process would get."""
    if not is_distributed():
        return value
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(value, op=dist.ReduceOp.SUM)


def gather(value: Tensor) -> Tensor:
    """Concatenate ``value`` [N, ...] from every rank along dim 0, differentiably. N may differ between
    ranks (cut groups of different lengths): each rank's part is padded to the longest for the exchange.
    The sizes are read on the host (a wait for the device every call): a statistic that partial sums
    give (``union_means``, ``all_reduce_sum_with_grad``) is cheaper that way."""
    if not is_distributed():
        return value
    from torch.distributed.nn.functional import all_gather

    sizes = [torch.zeros(1, dtype=torch.long, device=value.device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([value.shape[0]], device=value.device))
    sizes = [int(s) for s in sizes]
    longest = max(sizes)
    padding = value.new_zeros(longest - value.shape[0], *value.shape[1:])
    padded = torch.cat([value, padding]) if len(padding) else value
    parts = all_gather(padded.contiguous())
    return torch.cat([part[:size] for part, size in zip(parts, sizes)], dim=0)


def logsumexp(values: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """log sum exp of the entries of ``values`` on every rank, or of those where ``mask`` is True (no
    gradient; a rank may hold none): the normaliser of a softmax over the whole batch. -inf when no rank
    holds any entry; computed without reading anything on the host."""
    values = values.detach().float()
    if mask is not None:
        values = values.masked_fill(~mask, float("-inf"))
    peak = values.max() if values.numel() else values.new_full((), float("-inf"))
    if is_distributed():
        peak = peak.clone()
        dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    peak = torch.where(peak == float("-inf"), 0.0, peak)  # no entry anywhere: exp(-inf - 0) = 0, not nan
    return peak + all_reduce_sum((values - peak).exp().sum()).log()


def all_reduce_mean(value: Tensor) -> Tensor:
    """Mean of ``value`` over the ranks, differentiably (the backward sums the ranks' gradients)."""
    if not is_distributed():
        return value
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(value, op=dist.ReduceOp.SUM) / dist.get_world_size()


def is_rank_zero() -> bool:
    """Rank 0 of the launch, read from the environment a launcher sets (torchrun, Lightning's DDP, SLURM): for
    code that runs before the Trainer exists, when Lightning's rank_zero helpers do not know the rank yet."""
    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK", "SLURM_PROCID"))


def close_process_group() -> None:
    """End a DDP run cleanly: wait for every rank, then destroy the process group.

    Lightning leaves the group to interpreter shutdown; gloo's threads then die in static destructors
    in no set order, which now and then aborts a finished run ("terminate called without an active
    exception", exit -6)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
