"""The JEPA predictor: a narrow ViT that predicts target-token features from context tokens.

Context tokens (the encoder's 4-level output, 4D wide) are embedded to the predictor width by a small
MLP (``predictor_embed``); learned zero-init mask tokens (one shared by every mask generator, as the
study's release, or one per generator: JEPAModule's ``mask_tokens``) stand at the target positions; all tokens attend to each other with 3D rotary positions. Two heads project back to the 4D
width: ``predictor_proj`` for the targets and ``predictor_proj_context`` for the context tokens (the
dense context loss of V-JEPA 2.1). Parameter names match the official 2.1 code.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from jepa_lit.models.blocks import Block, init_vit_weights, modality_vector, rescale_blocks
from jepa_lit.models.positions import rope_coordinates, rope_rotation
from jepa_lit.models.vit import head_axis


class Predictor(nn.Module):
    """Args:
        encoder_dim: the encoder width D (inputs and outputs are ``num_levels * D`` wide).
        width, depth, num_heads: the predictor ViT (the study: 256, 8, 8).
        num_mask_tokens: learned mask tokens (1: shared by the mask generators; or one per generator).
        num_levels: hierarchical levels of the encoder output.
        rope_interleave, interpolate_rope: as in the encoder (V-JEPA 2.1 passes both to the predictor);
        patch_size: the encoder's (the grid ``interpolate_rope`` maps to depends on it).
        modality_embedding: learned video / image vectors added to every token.
        activation_checkpointing: recompute block activations in backward.
    """

    def __init__(
        self,
        encoder_dim: int = 768,
        width: int = 256,
        depth: int = 8,
        num_heads: int = 8,
        num_mask_tokens: int = 2,
        num_levels: int = 4,
        mlp_ratio: float = 4.0,
        rope_interleave: bool = True,
        interpolate_rope: bool = False,
        patch_size: int = 16,
        modality_embedding: bool = True,
        activation_checkpointing: bool = False,
    ):
        super().__init__()
        self.width, self.num_heads = width, num_heads
        self.rope_interleave, self.interpolate_rope, self.patch_size = rope_interleave, interpolate_rope, patch_size
        self.activation_checkpointing = activation_checkpointing
        in_dim = encoder_dim * num_levels
        if num_levels > 1:
            self.predictor_embed = nn.Sequential(
                nn.Linear(in_dim, encoder_dim), nn.GELU(), nn.Linear(encoder_dim, width)
            )
        else:
            self.predictor_embed = nn.Linear(in_dim, width)
        self.mask_tokens = nn.ParameterList([nn.Parameter(torch.zeros(1, 1, width)) for _ in range(num_mask_tokens)])
        self.predictor_blocks = nn.ModuleList([Block(width, num_heads, mlp_ratio) for _ in range(depth)])
        self.predictor_norm = nn.LayerNorm(width, eps=1e-6)
        self.predictor_proj = nn.Linear(width, in_dim)
        self.predictor_proj_context = nn.Linear(width, in_dim)
        init_vit_weights(self)
        rescale_blocks(self.predictor_blocks)
        if modality_embedding:
            self.img_mod_embed = nn.Parameter(torch.randn(1, 1, width) * 1e-6)
            self.video_mod_embed = nn.Parameter(torch.randn(1, 1, width) * 1e-6)
        else:
            self.img_mod_embed = self.video_mod_embed = None

    def forward(
        self,
        context: Tensor,
        context_idx: Tensor,
        target_idx: Tensor,
        grid: tuple[int, int, int],
        mask_index: int = 0,
        image: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """context [B, Kc, 4D] at ``context_idx`` [B, Kc]; predict ``target_idx`` [B, Kt].

        Returns (predictions at the targets [B, Kt, 4D], predictions at the context [B, Kc, 4D]).
        """
        if not 0 <= mask_index < len(self.mask_tokens):
            raise IndexError(f"mask_index {mask_index} but the predictor has {len(self.mask_tokens)} mask tokens")
        batch, num_context = context_idx.shape
        x = torch.cat(
            [
                self.predictor_embed(context),
                self.mask_tokens[mask_index].expand(batch, target_idx.shape[1], -1),
            ],
            dim=1,
        )
        if self.video_mod_embed is not None:
            x = x + modality_vector(self.video_mod_embed, self.img_mod_embed, image)
        # Attention is permutation-equivariant given the positions, so no sorting is needed.
        coords = rope_coordinates(torch.cat([context_idx, target_idx], dim=1), grid, self.interpolate_rope,
                                   self.patch_size)
        rope = head_axis(rope_rotation(coords, self.width // self.num_heads, self.rope_interleave))
        for block in self.predictor_blocks:
            if self.activation_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, rope, use_reentrant=False)
            else:
                x = block(x, rope)
        x = self.predictor_norm(x)
        return self.predictor_proj(x[:, num_context:]), self.predictor_proj_context(x[:, :num_context])
