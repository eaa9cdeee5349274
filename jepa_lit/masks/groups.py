"""Cut groups: which samples share one length of context / target index lists.

Index lists of a batch must have one length to form a tensor, so each sample's lists are cut to the
shortest of its group. The study's release cut each GPU's batch of 8 on its own (``cut_group_size: 8``);
``"global"`` cuts the whole global batch to one minimum (fewer tokens per clip: docs/reproducing.md).

Groups are defined on global sample indices, so that any split of the batch over processes trains
alike. The data sampler deals samples round-robin (local row b of rank r is global sample b * W + r), and
global sample i belongs to group i mod G, with G = ceil(global batch / cut_group_size) groups. With 4
processes x 8 and groups of 8, group r is exactly rank r's batch: one group per process, no exchange of
counts. With 1 process x 32 the same four groups are rows {0, 4, 8, ...}, {1, 5, ...}, ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional, Union

import torch
from torch import Tensor

CutGroupSize = Union[int, Literal["global"]]


def check_cut_group_size(size: CutGroupSize) -> CutGroupSize:
    if size == "global" or (isinstance(size, int) and not isinstance(size, bool) and size >= 1):
        return size
    raise ValueError(f"cut_group_size={size!r}; expected a positive number of samples or 'global'")


@dataclass
class CutGroups:
    """The cut groups of one batch, seen from one process.

    ids: the groups this process holds rows of (sorted).
    rows: per held group, its local batch rows (None: all rows, the usual one-group case, no indexing).
    weights: per held group, this process's share of the mean over groups (see ``cut_groups``).
    num_groups: G, over the whole global batch.
    spans_processes: some group has rows on more than one process (its minimum needs a collective).
    """

    ids: list[int]
    rows: list[Optional[Tensor]]
    weights: list[float]
    num_groups: int
    spans_processes: bool


def cut_groups(batch: int, size: CutGroupSize, rank: int = 0, world_size: int = 1) -> CutGroups:
    """The groups of a local batch of ``batch`` rows on ``rank`` of ``world_size`` processes.

    A loss averaged over a generator's groups (as the release's per-GPU losses are, by DDP's mean) is,
    on this process, the sum over its groups of ``weight * mean over the group's local rows``, where
    weight = W * local rows / (G * rows of the group). DDP's mean over the W processes then gives the
    mean over all G groups, whatever the split (weight 1 for one group per process, and for "global").
    """
    total = batch * world_size
    num_groups = 1 if size == "global" else max(1, math.ceil(total / size))
    group_of = torch.arange(total) % num_groups  # global sample i -> its group
    on_rank = torch.arange(total) % world_size  # global sample i = b * W + r lives on rank r
    sizes = torch.bincount(group_of, minlength=num_groups)
    local = group_of[rank::world_size]  # local row b is global sample b * W + rank
    ids = sorted(set(local.tolist()))
    spans = any(len(set(on_rank[group_of == k].tolist())) > 1 for k in range(num_groups))
    rows, weights = [], []
    for k in ids:
        members = (local == k).nonzero().flatten()
        rows.append(None if len(ids) == 1 else members)
        weights.append(world_size * len(members) / (num_groups * int(sizes[k])))
    return CutGroups(ids=ids, rows=rows, weights=weights, num_groups=num_groups, spans_processes=spans)
