"""Token positions for the (t, h, w) token grid: 3D rotary embedding and 3D sin-cos tables.

Token order everywhere is the Conv3d raster order: time-major, then row, then column, so a flat
index ``i`` on a grid ``(T', H', W')`` sits at ``t = i // (H'W')``, ``h = (i // W') % H'``,
``w = i % W'``.
"""

from __future__ import annotations

import math
from typing import Union

import torch
from torch import Tensor


def token_coordinates(index: Tensor, grid: tuple[int, int, int]) -> Tensor:
    """Flat token indices (any shape) -> float (t, h, w) coordinates, shape ``index.shape + (3,)``."""
    _, grid_h, grid_w = grid
    t = torch.div(index, grid_h * grid_w, rounding_mode="floor")
    rem = index - t * grid_h * grid_w
    h = torch.div(rem, grid_w, rounding_mode="floor")
    w = rem - h * grid_w
    return torch.stack([t, h, w], dim=-1).float()


def rope_pretrained_grid(patch_size: int) -> int:
    """The row / column count V-JEPA 2.1 interpolates RoPE positions to: its pretraining grid (256 px,
    or 252 px for patch 14)."""
    return (252 if patch_size == 14 else 256) // patch_size


def rope_coordinates(index: Tensor, grid: tuple[int, int, int], interpolate: bool = False,
                     patch_size: int = 16) -> Tensor:
    """The (t, h, w) positions RoPE rotates by. ``interpolate`` (V-JEPA 2.1's ``interpolate_rope``, in
    the encoder and the predictor alike) maps rows and columns onto the pretraining grid
    (``rope_pretrained_grid``: 16 x 16 for patch 16)."""
    coords = token_coordinates(index, grid)
    if interpolate:
        last = rope_pretrained_grid(patch_size) - 1
        scale = [1.0, last / max(grid[1] - 1, 1), last / max(grid[2] - 1, 1)]
        # Per axis, by Python floats: no table copied to the device on every call.
        coords = torch.stack([coords[..., axis] * factor for axis, factor in enumerate(scale)], dim=-1)
    return coords


def rope_axis_dim(head_dim: int) -> int:
    """Rotated width per axis: the head dim is split in three even chunks, the rest passes through."""
    return 2 * ((head_dim // 3) // 2)


def rope_tables(
    coords: Tensor,
    head_dim: int,
    interleave: bool = True,
    base: float = 10000.0,
) -> tuple[Tensor, Tensor]:
    """cos / sin tables of a 3D rotary embedding, computed once per forward and shared by all blocks.

    coords: ``[..., N, 3]`` float (t, h, w). Returns two tensors ``[..., N, head_dim]``; dims past the
    three rotated chunks get cos 1, sin 0 (pass-through).

    Each axis chunk of width ``d`` uses frequencies ``omega_k = base^(-k / (d/2))``, k < d/2, and rotates
    adjacent pairs (2k, 2k+1). V-JEPA 2.1 expands the frequencies to the pairs with
    ``repeat_interleave`` (``interleave=True``); V-JEPA 2 used ``repeat`` (``interleave=False``), which gives
    the two members of a pair different frequencies. Its checkpoints need that quirk reproduced.
    """
    d = rope_axis_dim(head_dim)
    omega = 1.0 / base ** (torch.arange(d // 2, dtype=torch.float32, device=coords.device) / (d / 2))
    freqs = coords.float().unsqueeze(-1) * omega  # [..., N, 3, d/2]
    if interleave:
        freqs = freqs.repeat_interleave(2, dim=-1)
    else:
        freqs = torch.cat([freqs, freqs], dim=-1)
    freqs = freqs.flatten(-2)  # [..., N, 3d]
    cos, sin = freqs.cos(), freqs.sin()
    rest = head_dim - 3 * d
    if rest:
        cos = torch.cat([cos, cos.new_ones(*cos.shape[:-1], rest)], dim=-1)
        sin = torch.cat([sin, sin.new_zeros(*sin.shape[:-1], rest)], dim=-1)
    return cos, sin


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate adjacent channel pairs of ``x`` [B, heads, N, hd] by the tables [B or 1, 1, N, hd]. Computed in
    the tables' fp32 and returned in ``x``'s dtype: q and k stay in v's (bf16-true, compiled: no mixed SDPA)."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    rotated = torch.stack((-x2, x1), dim=-1).flatten(-2)
    return (x * cos + rotated * sin).to(x.dtype)


Rotation = Union[Tensor, tuple[Tensor, Tensor]]


def rope_rotation(coords: Tensor, head_dim: int, interleave: bool = True) -> Rotation:
    """The rotation to apply to q and k, computed once per forward ([..., N, *]; callers add the head axis).

    With ``interleave`` (V-JEPA 2.1) both members of a pair share one angle, so the rotation is a complex
    multiplication by unit phasors [..., N, head_dim / 2]: one fused op instead of slicing, negating,
    stacking and two products (tested equal to ``apply_rope``). V-JEPA 2's quirk gives the members of a
    pair different angles, so it keeps the (cos, sin) tables.
    """
    cos, sin = rope_tables(coords, head_dim, interleave)
    if not interleave or torch.compiler.is_compiling():  # inductor generates no code for complex ops
        return cos, sin
    return torch.complex(cos[..., 0::2], sin[..., 0::2])


def rotate(x: Tensor, rotation: Rotation) -> Tensor:
    """Apply a ``rope_rotation`` to ``x`` [B, heads, N, head_dim] (any leading dims)."""
    if isinstance(rotation, tuple):
        return apply_rope(x, *rotation)
    # complex32 does not exist for bf16: rotate in fp32 and cast back (autocast keeps q, k in bf16).
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * rotation).flatten(-2).to(x.dtype)


def sincos_1d(dim: int, positions: Tensor) -> Tensor:
    """MAE-style 1D sin-cos: all sines first, then all cosines; ``omega_i = 10000^(-i / (dim/2))``."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
    angles = positions.double().reshape(-1, 1) * omega
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_3d(dim: int, grid: tuple[int, int, int], uniform_power: bool = True) -> Tensor:
    """Fixed 3D sin-cos embedding [N, dim] in token order (V-JEPA 1 layout).

    ``uniform_power``: each axis gets ``ceil(dim/6)*2`` channels (truncated to dim); otherwise time takes
    half the channels and rows / columns a quarter each. Channel order is [t, h, w].
    """
    grid_t, grid_h, grid_w = grid
    if uniform_power:
        d_t = d_h = d_w = int(math.ceil(dim / 6) * 2)
    else:
        d_t, d_h, d_w = dim // 2, dim // 4, dim // 4
    t, h, w = torch.meshgrid(
        torch.arange(grid_t), torch.arange(grid_h), torch.arange(grid_w), indexing="ij"
    )
    emb = torch.cat([sincos_1d(d_t, t), sincos_1d(d_h, h), sincos_1d(d_w, w)], dim=1)
    return emb[:, :dim].float()
