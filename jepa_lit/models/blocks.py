"""Transformer block shared by the encoder and the predictor (pre-LN, fused qkv, SDPA, optional RoPE).

Module names (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``) follow the
official V-JEPA code so its checkpoints load without renaming.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from jepa_lit.models.positions import Rotation, rotate


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention; q and k are rotated when RoPE tables are given."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, rope: Optional[Rotation] = None) -> Tensor:
        qkv = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        if rope is not None:
            q, k = rotate(qkv[:2], rope).unbind(0)  # q and k in one op
            v = qkv[2]
        else:
            q, k, v = qkv.unbind(0)
        if torch.compiler.is_compiling():
            # Inductor saves these strided views for the attention backward with strides fixed at the first
            # call's token count, and then fails on the next count (dynamic shapes); contiguous copies keep
            # every stride symbolic. Eager runs skip the copies (docs/performance.md).
            q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(rearrange(x, "b h n d -> b n (h d)"))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, rope: Optional[Rotation] = None) -> Tensor:
        x = x + self.attn(self.norm1(x), rope)
        return x + self.mlp(self.norm2(x))


def modality_vector(video: Tensor, image: Tensor, is_image: bool) -> Tensor:
    """The video or the image embedding, selected so that both take part in the graph (the other gets a
    zero gradient): DDP all-reduces a gradient bucket only once every parameter in it has one. Selected in
    Python, so no flag tensor is copied to the device on every call."""
    chosen, other = (image, video) if is_image else (video, image)
    return chosen + 0.0 * other


def init_vit_weights(module: nn.Module, std: float = 0.02) -> None:
    """Official V-JEPA init: truncated normal for Linear / Conv weights, zero biases, LN (1, 0)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv3d)):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def rescale_blocks(blocks: nn.ModuleList) -> None:
    """Divide each residual branch's output projection of layer l (1-based) by sqrt(2 l)."""
    for layer_id, block in enumerate(blocks, start=1):
        block.attn.proj.weight.data.div_((2.0 * layer_id) ** 0.5)
        block.mlp.fc2.weight.data.div_((2.0 * layer_id) ** 0.5)
