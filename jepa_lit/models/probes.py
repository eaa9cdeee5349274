"""Probes for frozen-encoder evaluation: map frozen tokens [B, N, D] to class logits [B, C].

- ``AttentiveProbe``: the study's probe (the study's evaluation protocol, experiments/probes/): a learned cls token is prepended,
  one multi-head self-attention (8 heads) runs over [cls; tokens], then a residual connection,
  LayerNorm, and a linear head on the cls output. With ``mean_pool=True`` the tokens are averaged
  first, so attention runs over [cls, mean token]: the study's SSv2 probe.
- ``LinearProbe``: a linear layer on the mean of the tokens (the study's ImageNet-100 probe). As
  ``linear_bn``, the mean token is first standardised by a BatchNorm without affine parameters (batch
  statistics in training, running ones in evaluation), MAE's linear-probe protocol: a plain linear
  layer trained by AdamW for a few epochs barely moves on features whose spread across clips is small
  next to their common offset (the demo's pretrained features: docs/demo.md).
- ``VJEPA2AttentiveProbe``: V-JEPA 2's attentive classifier: ``depth - 1`` pre-LN self-attention
  blocks over the tokens, then a cross-attention block whose single learned query reads the tokens
  (the query itself is not normalised, the cross-attention has no output projection), an MLP, and a
  linear head. 16 heads and depth 4 by default, as V-JEPA 2's video probes.

``build_probe(kind, ...)`` makes one by name (``PROBE_TYPES``).
"""

from __future__ import annotations

from typing import Literal, Optional, get_args

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from jepa_lit.models.blocks import MLP, Block, init_vit_weights, rescale_blocks

ProbeType = Literal["attentive", "attentive_mean", "linear", "linear_bn", "vjepa2_attentive"]
PROBE_TYPES: tuple[str, ...] = get_args(ProbeType)


class AttentiveProbe(nn.Module):
    """The study's attentive probe: cls token + one multi-head self-attention + residual + LayerNorm + linear.

    Only the cls output feeds the head, so attention is computed for the cls query alone over the
    keys / values [cls; tokens]: the cls output is exactly that of full self-attention over
    [cls; tokens] (each query attends independently), at O(N) instead of O(N^2) cost.

    Args:
        embed_dim: token width D.
        num_classes: output classes C.
        num_heads: attention heads (the study: 8).
        mean_pool: average the tokens into one before attention (the study's SSv2 variant).
    """

    def __init__(self, embed_dim: int, num_classes: int, num_heads: int = 8, mean_pool: bool = False):
        super().__init__()
        self.mean_pool = mean_pool
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.attn = nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        if self.mean_pool:
            tokens = tokens.mean(dim=1, keepdim=True)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        sequence = torch.cat([cls, tokens], dim=1)
        attended, _ = self.attn(cls, sequence, sequence, need_weights=False)
        return self.head(self.norm(cls + attended)[:, 0])


class LinearProbe(nn.Module):
    """A linear classifier on the mean-pooled tokens, optionally standardised first (``batch_norm``)."""

    def __init__(self, embed_dim: int, num_classes: int, batch_norm: bool = False):
        super().__init__()
        # No parameters either way, so a plain linear probe's state_dict keys stay ``head.*``.
        self.norm = nn.BatchNorm1d(embed_dim, affine=False) if batch_norm else nn.Identity()
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.head(self.norm(tokens.mean(dim=1)))


class CrossAttention(nn.Module):
    """Queries [B, Q, D] attend to tokens [B, N, D]; separate q and kv projections, no output projection."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"probe width {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)

    def forward(self, queries: Tensor, tokens: Tensor) -> Tensor:
        q = rearrange(self.q(queries), "b q (h d) -> b h q d", h=self.num_heads)
        k, v = rearrange(self.kv(tokens), "b n (two h d) -> two b h n d", two=2, h=self.num_heads)
        return rearrange(F.scaled_dot_product_attention(q, k, v), "b h q d -> b q (h d)")


class CrossAttentionBlock(nn.Module):
    """q <- q + CrossAttention(q, LN(tokens)); q <- q + MLP(LN(q))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.xattn = CrossAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, queries: Tensor, tokens: Tensor) -> Tensor:
        queries = queries + self.xattn(queries, self.norm1(tokens))
        return queries + self.mlp(self.norm2(queries))


class VJEPA2AttentiveProbe(nn.Module):
    """V-JEPA 2's attentive probe: ``depth - 1`` self-attention blocks, then one cross-attention query.

    Args:
        embed_dim: token width D.
        num_classes: output classes C.
        num_heads: attention heads (V-JEPA 2: 16).
        depth: blocks in all, the last being the cross-attention block (V-JEPA 2: 4).
        mlp_ratio: MLP hidden width / D.
    """

    def __init__(self, embed_dim: int, num_classes: int, num_heads: int = 16, depth: int = 4, mlp_ratio: float = 4.0):
        super().__init__()
        if depth < 1:
            raise ValueError(f"V-JEPA 2 probe depth must be >= 1, got {depth}")
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth - 1)])
        self.query_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.cross_block = CrossAttentionBlock(embed_dim, num_heads, mlp_ratio)
        self.head = nn.Linear(embed_dim, num_classes)
        init_vit_weights(self)
        nn.init.trunc_normal_(self.query_token, std=0.02)
        rescale_blocks(self.blocks)
        self.cross_block.mlp.fc2.weight.data.div_((2.0 * max(len(self.blocks), 1)) ** 0.5)

    def forward(self, tokens: Tensor) -> Tensor:
        for block in self.blocks:
            tokens = block(tokens)
        query = self.query_token.expand(tokens.shape[0], -1, -1)
        return self.head(self.cross_block(query, tokens)[:, 0])


def build_probe(
    kind: ProbeType, embed_dim: int, num_classes: int, num_heads: Optional[int] = None, depth: int = 4
) -> nn.Module:
    """A probe by name; ``num_heads`` None means the probe's default (8 for the study's, 16 for V-JEPA 2's)."""
    if kind not in PROBE_TYPES:
        raise ValueError(f"probe type {kind!r} is unknown; expected one of {', '.join(PROBE_TYPES)}")
    heads = num_heads or (16 if kind == "vjepa2_attentive" else 8)
    if not kind.startswith("linear") and embed_dim % heads:
        raise ValueError(f"the features are {embed_dim} wide, not divisible by the {kind} probe's {heads} attention "
                         f"heads: set model.attn_heads to a divisor of {embed_dim} (or another features.app_ratio)")
    if kind in ("attentive", "attentive_mean"):
        return AttentiveProbe(embed_dim, num_classes, heads, mean_pool=kind == "attentive_mean")
    if kind in ("linear", "linear_bn"):
        return LinearProbe(embed_dim, num_classes, batch_norm=kind == "linear_bn")
    return VJEPA2AttentiveProbe(embed_dim, num_classes, heads, depth)
