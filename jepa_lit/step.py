"""What one training step produced, as the base loss, the objectives and the callbacks read it.

Notation of the study (docs/objectives.md): Z is the student (context encoder) output scattered onto
the full token grid [B, T', H', W', 4D] with zeros at masked positions, V the visible positions, H the
target grid, dX_t = X_{t+1} - X_t over token time, valid pairs P_t = V_t and V_{t+1}. StepOutputs
computes each of these once a step, whichever terms read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import torch
from einops import rearrange
from torch import Tensor

from jepa_lit.distributed import all_reduce_sum, world_size
from jepa_lit.masks.base import MaskPair


def gather_tokens(features: Tensor, index: Tensor) -> Tensor:
    """features [B, N, C], index [B, K] -> [B, K, C]."""
    return torch.gather(features, 1, index.unsqueeze(-1).expand(-1, -1, features.shape[-1]))


@dataclass
class GeneratorOutputs:
    """What one mask generator produced in a step for one cut group of the batch (masks.rows: its rows;
    jepa_lit.masks.groups)."""

    masks: MaskPair
    context: Tensor  # [B, Kc, 4D] student features at masks.context (with gradient)
    predictions: Tensor  # [B, Kt, 4D] predictor outputs at masks.target
    context_predictions: Tensor  # [B, Kc, 4D] predictor outputs at masks.context


@dataclass
class StepOutputs:
    """Everything an objective may read about one training step."""

    clip: Tensor  # [B, 3, T, H, W] normalised input
    target: Tensor  # [B, N, 4D] target features, each level layer-normalised; detached unless no-EMA
    generators: list[list[GeneratorOutputs]]  # per mask generator, one entry per cut group held here
    grid: tuple[int, int, int]  # (T', H', W')
    embed_dim: int  # D, the width of one level
    num_levels: int = 4
    step: int = 0
    max_steps: int = 1
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def width(self) -> int:
        return self.embed_dim * self.num_levels

    def target_grid(self) -> Tensor:
        """H as [B, T', H', W', 4D]."""
        t, h, w = self.grid
        return rearrange(self.target, "b (t h w) c -> b t h w c", t=t, h=h, w=w)

    def student_grid(self, g: int) -> Tensor:
        """Z of generator ``g``: [B, T', H', W', 4D], zeros at masked positions, differentiable."""
        key = ("student", g)
        if key not in self._cache:
            parts = []
            for out in self.generators[g]:
                batch, _, width = out.context.shape
                index = out.masks.context.unsqueeze(-1).expand(-1, -1, width)
                parts.append(out.context.new_zeros(batch, self.num_tokens, width).scatter(1, index, out.context))
            grid = self.rows_in_order(g, parts)
            t, h, w = self.grid
            self._cache[key] = rearrange(grid, "b (t h w) c -> b t h w c", t=t, h=h, w=w)
        return self._cache[key]

    def visible(self, g: int) -> Tensor:
        """V of generator ``g``: bool [B, T', H', W']."""
        key = ("visible", g)
        if key not in self._cache:
            parts = []
            for out in self.generators[g]:
                context = out.masks.context
                flat = torch.zeros(context.shape[0], self.num_tokens, dtype=torch.bool, device=context.device)
                parts.append(flat.scatter_(1, context, True))
            self._cache[key] = self.rows_in_order(g, parts).view(-1, *self.grid)
        return self._cache[key]

    def rows_in_order(self, g: int, parts: list[Tensor]) -> Tensor:
        """Per-group tensors of generator ``g`` (rows first) -> one tensor over the batch's rows in order."""
        groups = self.generators[g]
        if len(groups) == 1 and groups[0].masks.rows is None:
            return parts[0]
        rows = torch.cat([out.masks.rows for out in groups]).to(parts[0].device)
        return torch.cat(parts)[rows.argsort()]

    def part_target(self, out: GeneratorOutputs) -> Tensor:
        """The target features [b, N, 4D] of the rows of one cut group."""
        return self.target if out.masks.rows is None else self.target[out.masks.rows]

    def context_tokens(self, g: int) -> Tensor:
        """Every visible student token of generator ``g`` on this process: [n, 4D]."""
        return torch.cat([out.context.flatten(0, 1) for out in self.generators[g]])

    def valid_pairs(self, g: int) -> Tensor:
        """P_t = V_t and V_{t+1}: bool [B, T'-1, H', W']."""
        key = ("pairs", g)
        if key not in self._cache:
            v = self.visible(g)
            self._cache[key] = v[:, 1:] & v[:, :-1]
        return self._cache[key]

    def pair_count(self, g: int) -> Tensor:
        """|P| of generator ``g`` over the whole batch (``global_count``, a collective): counted once a
        step, whichever objectives read it."""
        key = ("pair_count", g)
        if key not in self._cache:
            self._cache[key] = global_count(self.valid_pairs(g))
        return self._cache[key]

    def pair_mean(self, g: int, values: Tensor) -> tuple[Tensor, Tensor]:
        """(mean of ``values`` [B, T'-1, H', W', ...] over the valid pairs of generator ``g`` and all trailing
        elements, over the whole batch under DDP; whether the batch has any valid pair, a device flag never
        read on the host). The mean is 0 without pairs: ``mean_over_generators`` then leaves the generator out."""
        return masked_mean(values, self.valid_pairs(g), self.pair_count(g))

    def student_diff(self, g: int) -> Tensor:
        """dZ_t = Z_{t+1} - Z_t of generator ``g``: [B, T'-1, H', W', 4D] (read at valid pairs)."""
        key = ("student_diff", g)
        if key not in self._cache:
            self._cache[key] = temporal_diff(self.student_grid(g))
        return self._cache[key]

    def prediction_error(self, g: int) -> list[Tensor]:
        """|z^ - h| of generator ``g`` at its target tokens, per cut group: [b, Kt, 4D] each (the base loss
        and HW read it; a generator's loss is the groups' weighted sum, MaskPair.weight)."""
        key = ("prediction_error", g)
        if key not in self._cache:
            self._cache[key] = [(out.predictions - gather_tokens(self.part_target(out), out.masks.target)).abs()
                                for out in self.generators[g]]
        return self._cache[key]

    def target_diff(self) -> Tensor:
        """dH_t = H_{t+1} - H_t: [B, T'-1, H', W', 4D] (with gradient in no-EMA runs)."""
        if "target_diff" not in self._cache:
            self._cache["target_diff"] = temporal_diff(self.target_grid())
        return self._cache["target_diff"]

    @property
    def num_tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w

    def zero(self) -> Tensor:
        """A zero loss still attached to the graph (so DDP sees every parameter used)."""
        return sum(out.context.sum() for groups in self.generators for out in groups) * 0.0


def temporal_diff(x: Tensor) -> Tensor:
    """dX_t = X_{t+1} - X_t along token time (dim 1 of [B, T', H', W', C])."""
    return x[:, 1:] - x[:, :-1]


def global_count(mask: Tensor) -> Tensor:
    """The number of True entries of ``mask`` over every rank, divided by the number of ranks.

    Dividing a rank's sum by it gives that rank's share of the mean over the whole batch: DDP averages
    the ranks' gradients, so the run trains as on one process (see jepa_lit.distributed). Every rank
    must call it, with or without entries of its own: it is a collective."""
    return all_reduce_sum(mask.sum().float()) / world_size()


def masked_mean(values: Tensor, mask: Tensor, count: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """(mean of ``values`` over the positions where ``mask`` is True and all trailing elements, whether any
    position is selected). ``mask`` covers the leading dims of ``values`` ([*P] for [*P, ...]).

    The mean is over the whole batch: ``count`` is ``global_count(mask)`` (pass it when it is cached).
    Computed on every position, masked, with no host sync: no branch on the count and no boolean-mask
    gather (both wait for the device). An empty selection gives 0, attached to the graph, and a False
    flag; the flag stays on the device (``mean_over_generators`` weighs by it)."""
    if count is None:
        count = global_count(mask)
    weights = mask.reshape(*mask.shape, *[1] * (values.dim() - mask.dim()))
    per_position = values.shape[mask.dim():].numel()
    defined = count > 0
    return (values * weights).sum() / (torch.where(defined, count, 1.0) * per_position), defined


Term = Optional[Union[Tensor, tuple[Tensor, Tensor]]]


def mean_over_generators(outputs: StepOutputs, term: Callable[[int], Term]) -> Tensor:
    """Average ``term(g)`` over the generators where it is defined; zero (attached) when none is.

    ``term(g)`` is None (not defined, known on the host: too few tokens), a value (defined), or
    ``(value, defined)`` with ``defined`` a device flag (``pair_mean``, ``masked_mean``). The average is
    weighted by the flags, sum(v f) / max(sum(f), 1), so that whether a generator had any valid pair is
    never read on the host; with no flag set it is 0, still attached to every generator's features."""
    values, flags = [], []
    for found in (term(g) for g in range(len(outputs.generators))):
        if found is None:
            continue
        value, defined = found if isinstance(found, tuple) else (found, torch.ones_like(found, dtype=torch.bool))
        values.append(value)
        flags.append(defined)
    if not values:
        return outputs.zero()
    values = torch.stack(values)
    flags = torch.stack(flags).to(values.dtype)
    return (values * flags).sum() / flags.sum().clamp(min=1)


@dataclass
class StepRecord:
    """What a training step leaves for the callbacks (JEPAModule.last_step), read before backward: its
    outputs, its named loss terms (their graph still held) and its input clip."""

    outputs: StepOutputs
    terms: dict[str, Tensor]  # name -> weighted term, as summed into the loss
    clip: Tensor  # the batch's clips [B, 3, T, H, W], to recompute the step (a non-finite gradient's term)
