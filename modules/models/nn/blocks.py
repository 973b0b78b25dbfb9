"""UNet building blocks in the LDM ``openaimodel`` layout (CompVis latent-diffusion / Stability generative-models).

Parameter names match the single-file checkpoint keys: ``ResBlock`` has ``in_layers.{0,2}``, ``emb_layers.1``,
``out_layers.{0,3}`` and an optional 1x1 ``skip_connection``; ``Downsample`` a stride-2 conv named ``op``;
``Upsample`` a conv named ``conv``. Index gaps (SiLU, dropout) are parameterless modules kept so indices match.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cpu_fast import FastConv2d

GROUPS = 32  # LDM ``normalization()``: GroupNorm32(32, channels), eps 1e-5


def timestep_embedding(timesteps: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps, cosine half first.

    ``freqs_i = exp(-ln(max_period) * i / (dim/2))``, ``emb = [cos(t * freqs), sin(t * freqs)]`` — the
    ``timestep_embedding`` of LDM's ``diffusionmodules/util.py`` (Ho et al. 2020 / "Attention is all you need").
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    )
    args = timesteps.to(torch.float32)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class ResBlock(nn.Module):
    """LDM ``ResBlock`` without scale-shift norm: GN-SiLU-conv, add the projected time embedding, GN-SiLU-conv,
    plus a (1x1 conv when channels change) skip connection."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        out_channels = out_channels or channels
        self.in_layers = nn.Sequential(
            nn.GroupNorm(GROUPS, channels), nn.SiLU(), FastConv2d(channels, out_channels, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(
            nn.GroupNorm(GROUPS, out_channels), nn.SiLU(), nn.Identity(), FastConv2d(out_channels, out_channels, 3,
                                                                                    padding=1)
        )
        self.skip_connection: nn.Module = (
            nn.Identity() if out_channels == channels else FastConv2d(channels, out_channels, 1)
        )

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        if torch.is_grad_enabled():
            h = self.in_layers(x)
            h = h + self.emb_layers(emb).to(h.dtype)[:, :, None, None]
            return self.skip_connection(x) + self.out_layers(h)
        # inference: the same layers with SiLU and the adds in place (fewer full-size temporaries)
        h = self.in_layers[2](F.silu(self.in_layers[0](x), inplace=True))
        h += self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        out = self.out_layers[3](F.silu(self.out_layers[0](h), inplace=True))
        return out.add_(self.skip_connection(x))


class Downsample(nn.Module):
    """Stride-2 3x3 convolution (LDM ``Downsample`` with ``use_conv=True``)."""

    def __init__(self, channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        self.op = FastConv2d(channels, out_channels or channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then 3x3 conv (LDM ``Upsample``: ``F.interpolate(x, scale_factor=2, mode="nearest")``).

    Always exactly x2: when the skip connection of the next block is smaller (latent sizes that are not multiples
    of ``2**(levels-1)``, e.g. 512x520 images), the UNet resizes this block's output at the concatenation, as A1111
    does (see ``UNetModel.forward``)."""

    def __init__(self, channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        self.conv = FastConv2d(channels, out_channels or channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
