"""Multiblock-3D masking (V-JEPA): the targets are the union of a few spatio-temporal blocks.

Per step and generator one block shape is drawn and shared by the batch; block positions are drawn
per sample. The study uses two generators: short range (8 blocks of 15% of the spatial grid) and long
range (2 blocks of 70%), aspect ratio 0.75-1.5, blocks spanning all of time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from jepa_lit.masks.base import MaskPair, MaskSampler
from jepa_lit.masks.groups import CutGroupSize, check_cut_group_size


@dataclass
class BlockGenerator:
    """One mask generator: ``num_blocks`` blocks of ``spatial_scale`` of the H'W' grid each."""

    num_blocks: int = 8
    spatial_scale: tuple[float, float] = (0.15, 0.15)
    temporal_scale: tuple[float, float] = (1.0, 1.0)
    aspect_ratio: tuple[float, float] = (0.75, 1.5)


def study_generators() -> list[BlockGenerator]:
    return [
        BlockGenerator(num_blocks=8, spatial_scale=(0.15, 0.15)),
        BlockGenerator(num_blocks=2, spatial_scale=(0.7, 0.7)),
    ]


def _uniform(low_high: tuple[float, float], rng: torch.Generator) -> float:
    low, high = low_high
    return low + (high - low) * torch.rand(1, generator=rng).item()


def block_shape(gen: BlockGenerator, grid: tuple[int, int, int], rng: torch.Generator) -> tuple[int, int, int]:
    """(t, h, w) of the blocks of one generator for one step."""
    grid_t, grid_h, grid_w = grid
    t = max(1, int(grid_t * _uniform(gen.temporal_scale, rng)))
    area = int(grid_h * grid_w * _uniform(gen.spatial_scale, rng))  # whole tokens, as V-JEPA
    aspect = _uniform(gen.aspect_ratio, rng)
    h = min(max(1, round(math.sqrt(area * aspect))), grid_h)
    w = min(max(1, round(math.sqrt(area / aspect))), grid_w)
    return min(t, grid_t), h, w


class MultiBlock3D(MaskSampler):
    """Args:
        generators: the mask generators (default: the study's 8 x 0.15 and 2 x 0.7).
        seed: base seed; masks are a pure function of (seed, step, global sample index). None: the
            run's seed_everything (jepa_lit.seeds), so that another seed also draws other masks.
        max_keep: optional cap on context tokens.
        cut_group_size: samples whose index lists are cut to one length: 8 (the study's per-GPU batch;
            groups on global sample indices, jepa_lit.masks.groups) or "global" (the whole global batch).
    """

    max_tries: int = 20

    def __init__(self, generators: Optional[list[BlockGenerator]] = None, seed: Optional[int] = None,
                 max_keep: Optional[int] = None, cut_group_size: CutGroupSize = 8):
        self.generators = list(generators) if generators is not None else study_generators()
        self.seed = seed
        self.max_keep = max_keep
        self.cut_group_size = check_cut_group_size(cut_group_size)

    @property
    def num_generators(self) -> int:
        return len(self.generators)

    def __call__(self, clip: Tensor, grid: tuple[int, int, int], step: int) -> list[list[MaskPair]]:
        return [self.cut(target, clip.device, self.max_keep) for target in self.target_masks(clip, grid, step)]

    def target_masks(self, clip: Tensor, grid: tuple[int, int, int], step: int) -> list[Tensor]:
        """One boolean target mask [B, T', H', W'] per generator, before the index lists are cut."""
        step_rng = self.rng(step)
        batch = clip.shape[0]
        masks = []
        for gen_index, gen in enumerate(self.generators):
            shape = block_shape(gen, grid, step_rng)  # shared by the whole (global) batch
            target = torch.zeros(batch, *grid, dtype=torch.bool)
            for b in range(batch):
                # Ranks are dealt samples round-robin (as DistributedSampler does): local b is global b*W + rank.
                rng = self.sample_rng(step, gen_index, b * self.world_size + self.rank)
                target[b] = self._sample_target(clip, b, gen_index, gen, shape, grid, rng)
            masks.append(target)
        return masks

    def _sample_target(self, clip, b, gen_index, gen, shape, grid, rng) -> Tensor:
        for _ in range(self.max_tries):
            origins = self.block_origins(clip, b, gen_index, gen.num_blocks, shape, grid, rng)
            mask = torch.zeros(grid, dtype=torch.bool)
            t, h, w = shape
            for t0, h0, w0 in origins.tolist():
                mask[t0 : t0 + t, h0 : h0 + h, w0 : w0 + w] = True
            keep = self.context_steps(grid)
            if not mask[:keep].all():  # the context (in its time steps) must not be empty
                mask[keep:] = True  # time steps the context may not see are all targets
                return mask
        covered = "whole" if keep == grid[0] else f"first {keep} token time steps of the"
        raise RuntimeError(
            f"mask generator {gen_index} ({gen}) covered the {covered} {grid} token grid {self.max_tries} times; "
            "use fewer or smaller blocks, or a larger input"
        )

    def context_steps(self, grid: tuple[int, int, int]) -> int:
        """Token time steps the context may come from: all of them here (FuturePredictive: the first part)."""
        return grid[0]

    def block_origins(self, clip, b, gen_index, num_blocks, shape, grid, rng) -> Tensor:
        """[num_blocks, 3] (t, h, w) block origins for sample ``b``: uniform here; MotionGuided
        overrides this to place blocks on the moving regions."""
        highs = torch.tensor([g - s + 1 for g, s in zip(grid, shape)])
        return (torch.rand(num_blocks, 3, generator=rng) * highs).long()
