"""Motion-guided masking (MG / AMG): multiblock-3D with the blocks drawn onto the moving regions.

The motion map of a clip is m = mean over RGB of |x_{t+1} - x_t| on the normalised clip (the first
frame difference repeated so there is one per frame), resized (trilinear) to the token grid and divided
by its per-clip max. Every block origin is scored by the mean of m inside the block (an average pool
over all origins at once). Each block's origin is uniform with probability ``random_rate``, otherwise
drawn with probability proportional to max(score, 1e-6)^alpha. Blocks are targets, so high-motion
regions become prediction targets (docs/objectives.md; MG: alpha 2.0, r 0.1; AMG: alpha 5.0, r 0.0).
A still clip (an image repeated) has m = 0 everywhere, so its blocks are uniform.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from jepa_lit.masks.base import MaskPair
from jepa_lit.masks.groups import CutGroupSize
from jepa_lit.masks.multiblock import BlockGenerator, MultiBlock3D


def check_rate(random_rate: float) -> float:
    if not 0.0 <= random_rate <= 1.0:
        raise ValueError(f"random_rate={random_rate}; expected a probability in [0, 1]")
    return random_rate


def motion_map(clip: Tensor, grid: tuple[int, int, int]) -> Tensor:
    """[B, T', H', W'] motion per token in [0, 1] (CPU, fp32), from a normalised clip [B, 3, T, H, W]."""
    with torch.no_grad():
        x = clip.float()
        if x.shape[2] < 2:
            return torch.zeros(x.shape[0], *grid)
        diff = (x[:, :, 1:] - x[:, :, :-1]).abs().mean(1)  # [B, T-1, H, W]
        diff = torch.cat([diff[:, :1], diff], dim=1)
        motion = F.interpolate(diff.unsqueeze(1), size=grid, mode="trilinear", align_corners=False).squeeze(1)
        peak = motion.flatten(1).amax(1).clamp_min(1e-6)
        return (motion / peak.view(-1, 1, 1, 1)).cpu()


class MotionGuided(MultiBlock3D):
    """Args:
        generators: the mask generators (default: the study's 8 x 0.15 and 2 x 0.7).
        alpha: sharpness of the preference for motion (MG 2.0, AMG 5.0).
        random_rate: probability that a block's origin is uniform instead (MG 0.1, AMG 0.0).
        seed, max_keep, cut_group_size: as MultiBlock3D.
    """

    def __init__(
        self,
        generators: Optional[list[BlockGenerator]] = None,
        alpha: float = 2.0,
        random_rate: float = 0.1,
        seed: Optional[int] = None,
        max_keep: Optional[int] = None,
        cut_group_size: CutGroupSize = 8,
    ):
        super().__init__(generators=generators, seed=seed, max_keep=max_keep, cut_group_size=cut_group_size)
        self.alpha, self.random_rate = alpha, check_rate(random_rate)
        self._motion: Optional[Tensor] = None

    def __call__(self, clip: Tensor, grid: tuple[int, int, int], step: int) -> list[list[MaskPair]]:
        self._motion = motion_map(clip, grid)
        try:
            return super().__call__(clip, grid, step)
        finally:
            self._motion = None

    def block_origins(self, clip, b, gen_index, num_blocks, shape, grid, rng) -> Tensor:
        motion = self._motion[b] if self._motion is not None else motion_map(clip[b : b + 1], grid)[0]
        scores = F.avg_pool3d(motion[None, None], kernel_size=shape, stride=1)[0, 0]  # one per origin
        probs = scores.clamp_min(1e-6).pow(self.alpha).flatten()
        drawn = torch.multinomial(probs, num_blocks, replacement=True, generator=rng)
        uniform = torch.randint(probs.numel(), (num_blocks,), generator=rng)
        use_uniform = torch.rand(num_blocks, generator=rng) < self.random_rate
        flat = torch.where(use_uniform, uniform, drawn)
        return torch.stack(torch.unravel_index(flat, scores.shape), dim=-1)
