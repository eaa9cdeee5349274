"""Video ViT encoder in the V-JEPA 2.1 style.

Conv3d tubelet patch embedding (2 x 16 x 16), pre-LN blocks, no CLS token, 3D rotary positions inside
attention (or a fixed 3D sin-cos table for V-JEPA 1), a learned modality embedding, and hierarchical
outputs: 4 evenly spaced blocks, each through its own LayerNorm (``norms_block``), concatenated for
training; the last one alone for evaluation. Parameter names match the official code.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from jepa_lit.models.blocks import Block, init_vit_weights, modality_vector, rescale_blocks
from jepa_lit.models.official import load_official_encoder
from jepa_lit.models.positions import Rotation, rope_coordinates, rope_rotation, sincos_3d

# name -> (width, depth, heads)
vit_sizes: dict[str, tuple[int, int, int]] = {
    "tiny": (192, 12, 3),
    "small": (384, 12, 6),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
}


class PatchEmbed3D(nn.Module):
    def __init__(self, embed_dim: int, patch_size: int, tubelet_size: int, in_chans: int = 3):
        super().__init__()
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, T'H'W', D], raster (t, h, w) order


def head_axis(rotation: Rotation) -> Rotation:
    """[..., N, *] -> [..., 1, N, *]: broadcast a rotation over the attention heads."""
    if isinstance(rotation, tuple):
        return tuple(t.unsqueeze(-3) for t in rotation)
    return rotation.unsqueeze(-3)


def hierarchical_layers(depth: int, num_levels: int) -> list[int]:
    """Evenly spaced block indices ending at the last block: depth 12 -> [2, 5, 8, 11]."""
    return [max(0, depth * (k + 1) // num_levels - 1) for k in range(num_levels)]


class VisionTransformer(nn.Module):
    """Video ViT. ``forward(x, token_idx=None, hierarchical=False)``.

    Args:
        size: preset width / depth / heads (tiny 192/12/3, small 384/12/6, base 768/12/12, large 1024/24/16).
        positions: "rope" (3D rotary, V-JEPA 2 / 2.1) or "sincos" (fixed 3D table, V-JEPA 1).
        rope_interleave: True for V-JEPA 2.1 frequency layout, False for V-JEPA 2's ``repeat`` quirk.
        interpolate_rope: rescale row / column positions to a 16 x 16 grid (V-JEPA 2.1 pretraining setting).
        num_frames, img_size: the clip the sin-cos table is built for (resampled for other sizes).
        image_patch_embed: add ``patch_embed_img`` (tubelet 1) for single-frame inputs.
        num_levels: blocks in the hierarchical output.
        activation_checkpointing: recompute block activations in backward to save memory.
        embed_dim, depth, num_heads: override the preset (tests, custom sizes).
        pretrained: path of an official V-JEPA 2 / 2.1 checkpoint (or an export of jepa-lit's) to load,
            with strict key and shape checks; ``pretrained_entry`` picks its entry ("auto": the EMA
            weights, ``ema_encoder`` else ``target_encoder``, else the ``encoder``). The RoPE settings are
            checked against the checkpoint's version; ``allow_rope_mismatch`` skips that check.
    """

    def __init__(
        self,
        size: Literal["tiny", "small", "base", "large"] = "base",
        patch_size: int = 16,
        tubelet_size: int = 2,
        num_frames: int = 16,
        img_size: int = 224,
        positions: Literal["rope", "sincos"] = "rope",
        rope_interleave: bool = True,
        interpolate_rope: bool = False,
        modality_embedding: bool = True,
        image_patch_embed: bool = False,
        num_levels: int = 4,
        mlp_ratio: float = 4.0,
        activation_checkpointing: bool = False,
        embed_dim: Optional[int] = None,
        depth: Optional[int] = None,
        num_heads: Optional[int] = None,
        pretrained: Optional[str] = None,
        pretrained_entry: str = "auto",
        allow_rope_mismatch: bool = False,
    ):
        super().__init__()
        # Everything needed to rebuild this encoder (stored in checkpoints for evaluation).
        self.config = dict(
            size=size, patch_size=patch_size, tubelet_size=tubelet_size, num_frames=num_frames, img_size=img_size,
            positions=positions, rope_interleave=rope_interleave, interpolate_rope=interpolate_rope,
            modality_embedding=modality_embedding, image_patch_embed=image_patch_embed, num_levels=num_levels,
            mlp_ratio=mlp_ratio, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
        )
        if size not in vit_sizes:
            raise ValueError(f"encoder size {size!r} is unknown; expected one of {sorted(vit_sizes)}")
        preset_dim, preset_depth, preset_heads = vit_sizes[size]
        self.embed_dim = embed_dim or preset_dim
        self.depth = depth or preset_depth
        self.num_heads = num_heads or preset_heads
        self.patch_size, self.tubelet_size = patch_size, tubelet_size
        self.positions = positions
        self.rope_interleave = rope_interleave
        self.interpolate_rope = interpolate_rope
        self.activation_checkpointing = activation_checkpointing
        self.num_levels = num_levels
        self.levels = hierarchical_layers(self.depth, num_levels)

        self.patch_embed = PatchEmbed3D(self.embed_dim, patch_size, tubelet_size)
        self.patch_embed_img = PatchEmbed3D(self.embed_dim, patch_size, 1) if image_patch_embed else None
        self.pos_grid = (num_frames // tubelet_size, img_size // patch_size, img_size // patch_size)
        if positions == "sincos":
            table = sincos_3d(self.embed_dim, self.pos_grid).unsqueeze(0)
            self.pos_embed = nn.Parameter(table, requires_grad=False)
        elif positions != "rope":
            raise ValueError(f"positions={positions!r}; expected 'rope' or 'sincos'")
        self.blocks = nn.ModuleList(
            [Block(self.embed_dim, self.num_heads, mlp_ratio) for _ in range(self.depth)]
        )
        self.norms_block = nn.ModuleList([nn.LayerNorm(self.embed_dim, eps=1e-6) for _ in range(num_levels)])
        init_vit_weights(self)
        rescale_blocks(self.blocks)
        if modality_embedding:
            self.img_mod_embed = nn.Parameter(torch.randn(1, 1, self.embed_dim) * 1e-6)
            self.video_mod_embed = nn.Parameter(torch.randn(1, 1, self.embed_dim) * 1e-6)
        else:
            self.img_mod_embed = self.video_mod_embed = None
        if pretrained:
            report = load_official_encoder(self, pretrained, pretrained_entry, check_rope=not allow_rope_mismatch)
            rank_zero_info(f"encoder weights from {pretrained}: {report.summary()}")

    @property
    def out_dim(self) -> int:
        """Width of the hierarchical (training) output."""
        return self.embed_dim * self.num_levels

    def token_grid(self, shape: torch.Size) -> tuple[int, int, int]:
        """(T', H', W') for an input of shape [B, C, T, H, W]."""
        _, _, frames, height, width = shape
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f"input size {height}x{width} is not divisible by the patch size {self.patch_size}"
            )
        if self._is_image(frames):
            return 1, height // self.patch_size, width // self.patch_size
        if frames % self.tubelet_size:
            raise ValueError(f"{frames} frames are not divisible by the tubelet size {self.tubelet_size}")
        return frames // self.tubelet_size, height // self.patch_size, width // self.patch_size

    def _is_image(self, frames: int) -> bool:
        return frames == 1 and self.patch_embed_img is not None

    def forward(self, x: Tensor, token_idx: Optional[Tensor] = None, hierarchical: bool = False) -> Tensor:
        """Encode clips [B, 3, T, H, W].

        token_idx: optional [B, K] flat indices of the tokens to keep (the context); positions follow them.
        hierarchical: return the 4 levels concatenated [B, K, 4D]; else the last level [B, K, D].
        """
        grid = self.token_grid(x.shape)
        image = self._is_image(x.shape[2])
        tokens = (self.patch_embed_img if image else self.patch_embed)(x)
        if self.video_mod_embed is not None:
            tokens = tokens + modality_vector(self.video_mod_embed, self.img_mod_embed, image)
        if self.positions == "sincos":
            tokens = tokens + self._sincos_table(grid)
        if token_idx is not None:
            tokens = torch.gather(tokens, 1, token_idx.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        rope = self._rope(grid, token_idx, tokens.device) if self.positions == "rope" else None

        levels = []
        for i, block in enumerate(self.blocks):
            if self.activation_checkpointing and self.training and torch.is_grad_enabled():
                tokens = checkpoint(block, tokens, rope, use_reentrant=False)
            else:
                tokens = block(tokens, rope)
            if hierarchical:
                levels.extend(norm(tokens) for level, norm in zip(self.levels, self.norms_block) if level == i)
        if hierarchical:
            return torch.cat(levels, dim=-1)
        return self.norms_block[-1](tokens)

    def _rope(self, grid, token_idx: Optional[Tensor], device) -> Rotation:
        index = token_idx if token_idx is not None else torch.arange(grid[0] * grid[1] * grid[2], device=device)
        coords = rope_coordinates(index, grid, self.interpolate_rope, self.patch_size)
        rotation = rope_rotation(coords, self.embed_dim // self.num_heads, self.rope_interleave)
        return head_axis(rotation)

    def _sincos_table(self, grid: tuple[int, int, int]) -> Tensor:
        if grid == self.pos_grid:
            return self.pos_embed
        table = self.pos_embed.reshape(1, *self.pos_grid, -1).permute(0, 4, 1, 2, 3)
        table = nn.functional.interpolate(table, size=grid, mode="trilinear", align_corners=False)
        return table.permute(0, 2, 3, 4, 1).flatten(1, 3)
