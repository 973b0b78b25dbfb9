"""LDM ``attention.py`` layers: ``CrossAttention``, ``FeedForward`` (GEGLU), ``BasicTransformerBlock`` and
``SpatialTransformer``, with the single-file checkpoint parameter names (``to_q``, ``to_k``, ``to_v``,
``to_out.0``, ``ff.net.0.proj``, ``ff.net.2``, ``norm1..3``, ``norm``, ``proj_in``, ``proj_out``,
``transformer_blocks.N``).

Attention kernels come from the backend registry in :mod:`modules.memory.attention`; each attention layer keeps
the chosen function in ``attention_fn`` (PyTorch SDPA unless told otherwise). The self-attention (``attn1``) also
has the ``spatial_wrap`` wrap point of :mod:`.spatial_attention` (token merging, Hypertile); ``SpatialTransformer``
passes the feature map's size down to it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modules.memory.attention import AttentionFn, sdp_attention

from .blocks import GROUPS
from .cpu_fast import FastConv2d, FastLinear
from .spatial_attention import HW, SpatialWrap


class CrossAttention(nn.Module):
    """Multi-head attention with bias-free q/k/v projections (LDM ``CrossAttention``); self-attention when no
    context is given."""

    def __init__(self, query_dim: int, heads: int, dim_head: int, context_dim: int | None = None) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = FastLinear(query_dim, inner, bias=False)
        self.to_k = FastLinear(context_dim or query_dim, inner, bias=False)
        self.to_v = FastLinear(context_dim or query_dim, inner, bias=False)
        self.to_out = nn.Sequential(FastLinear(inner, query_dim), nn.Identity())
        self.attention_fn: AttentionFn = sdp_attention
        self.spatial_wrap: SpatialWrap | None = None

    def forward(self, x: Tensor, context: Tensor | None = None, hw: HW | None = None) -> Tensor:
        """Attention of ``x`` over ``context`` (self-attention without); with ``hw`` (the map ``x`` covers) and a
        ``spatial_wrap`` set, self-attention goes through the wrap."""
        if context is None and hw is not None and self.spatial_wrap is not None:
            return self.spatial_wrap(self._self_attend, x, hw)
        source = x if context is None else context
        out = self.attention_fn(self.to_q(x), self.to_k(source), self.to_v(source), self.heads)
        return self.to_out[0](out)

    def _self_attend(self, x: Tensor, _hw: HW) -> Tensor:
        return self.to_out[0](self.attention_fn(self.to_q(x), self.to_k(x), self.to_v(x), self.heads))


class GEGLU(nn.Module):
    """Gated GELU (Shazeer 2020): one linear produces value and gate, ``value * gelu(gate)``."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = FastLinear(dim_in, dim_out * 2)

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        if torch.is_grad_enabled():
            return value * F.gelu(gate)
        return F.gelu(gate).mul_(value)  # inference: one temporary fewer, the same values


class FeedForward(nn.Module):
    """``net = [GEGLU(dim, 4*dim), dropout, Linear(4*dim, dim)]`` (LDM ``FeedForward`` with ``glu=True``)."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Identity(), FastLinear(dim * mult, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Pre-norm self-attention, cross-attention and GEGLU feed-forward, each with a residual."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int) -> None:
        super().__init__()
        self.attn1 = CrossAttention(dim, heads, dim_head)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, heads, dim_head, context_dim=context_dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: Tensor, context: Tensor, hw: HW | None = None) -> Tensor:
        x = self.attn1(self.norm1(x), hw=hw) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """Image-to-sequence transformer: GroupNorm (eps 1e-6), ``proj_in``, ``depth`` transformer blocks,
    ``proj_out``, residual. SD1 projects with 1x1 convolutions; SD2/SDXL (``use_linear_in_transformer``) with
    linear layers applied after flattening."""

    def __init__(
        self, channels: int, heads: int, dim_head: int, depth: int, context_dim: int, use_linear: bool
    ) -> None:
        super().__init__()
        inner = heads * dim_head
        self.use_linear = use_linear
        self.norm = nn.GroupNorm(GROUPS, channels, eps=1e-6)
        self.proj_in: nn.Module = FastLinear(channels, inner) if use_linear else FastConv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(inner, heads, dim_head, context_dim) for _ in range(depth)]
        )
        self.proj_out: nn.Module = FastLinear(inner, channels) if use_linear else FastConv2d(inner, channels, 1)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        b, _, height, width = x.shape
        h = self.norm(x)
        if not self.use_linear:
            h = self.proj_in(h)
        inner = h.shape[1]
        h = h.permute(0, 2, 3, 1).reshape(b, height * width, inner)
        if self.use_linear:
            h = self.proj_in(h)
        for block in self.transformer_blocks:
            h = block(h, context, (height, width))
        if self.use_linear:
            h = self.proj_out(h)
        h = h.reshape(b, height, width, h.shape[-1]).permute(0, 3, 1, 2)
        if not self.use_linear:
            h = self.proj_out(h.contiguous(memory_format=_memory_format(x)))
        return x + h


def _memory_format(x: Tensor) -> torch.memory_format:
    """channels_last when the activations already are (``--opt-channelslast``), else the default layout."""
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format
