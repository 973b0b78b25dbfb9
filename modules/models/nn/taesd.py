"""TAESD: madebyollin's Tiny AutoEncoder for Stable Diffusion (https://github.com/madebyollin/taesd), the network
A1111 uses for the "TAESD" live preview and for `sd_vae_encode_method` / `sd_vae_decode_method` = "TAESD".

Layout (the key names of `taesd_encoder.pth` / `taesd_decoder.pth` / `taesdxl_*.pth`, plain numbered
`nn.Sequential` state dicts with no prefix):

* a `TinyBlock` is three 3×3 convolutions with ReLU between them (`conv.0`, `conv.2`, `conv.4`) plus a skip path
  (`skip`: a bias-free 1×1 convolution when the widths differ, else identity), summed and passed through a ReLU;
* the encoder takes an RGB image in [0, 1]: conv 3→64, a block, then three times (a bias-free stride-2 conv, three
  blocks), then conv 64→latent channels. Its output is already in the diffusion model's (scaled) latent space;
* the decoder takes those latents: a soft clamp `3·tanh(x / 3)` (index 0, no weights), conv→64 and ReLU, then three
  times (three blocks, ×2 nearest upsample, a bias-free conv), a block, conv 64→3. Its output is RGB in [0, 1].

The SD1/SD2 and SDXL files share this layout (only the weights differ). Everything here is written from the
published architecture; `tests/unit/test_preview_networks.py` checks it against diffusers' `AutoencoderTiny`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

LATENT_CHANNELS = 4
WIDTH = 64


def _conv(n_in: int, n_out: int, *, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, stride=stride, padding=1, bias=bias)


class SoftClamp(nn.Module):
    """`3 · tanh(x / 3)`: keeps decoder inputs within ±3 smoothly (TAESD's `Clamp`)."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x / 3.0) * 3.0


class TinyBlock(nn.Module):
    """Residual block: ReLU(conv3(ReLU(conv2(ReLU(conv1(x))))) + skip(x)); keys `conv.{0,2,4}`, `skip`."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(_conv(n_in, n_out), nn.ReLU(), _conv(n_out, n_out), nn.ReLU(), _conv(n_out, n_out))
        self.skip: nn.Module = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.fuse(self.conv(x) + self.skip(x))


def _blocks(n: int) -> list[nn.Module]:
    return [TinyBlock(WIDTH, WIDTH) for _ in range(n)]


def taesd_encoder(latent_channels: int = LATENT_CHANNELS) -> nn.Sequential:
    """RGB in [0, 1] (B, 3, H, W) → scaled latents (B, C, H/8, W/8); state-dict keys as `taesd_encoder.pth`."""
    layers: list[nn.Module] = [_conv(3, WIDTH), TinyBlock(WIDTH, WIDTH)]
    for _ in range(3):
        layers += [_conv(WIDTH, WIDTH, stride=2, bias=False), *_blocks(3)]
    layers.append(_conv(WIDTH, latent_channels))
    return nn.Sequential(*layers)


def taesd_decoder(latent_channels: int = LATENT_CHANNELS) -> nn.Sequential:
    """Scaled latents (B, C, h, w) → RGB in [0, 1] (B, 3, 8h, 8w); state-dict keys as `taesd_decoder.pth`."""
    layers: list[nn.Module] = [SoftClamp(), _conv(latent_channels, WIDTH), nn.ReLU()]
    for _ in range(3):
        layers += [*_blocks(3), nn.Upsample(scale_factor=2), _conv(WIDTH, WIDTH, bias=False)]
    layers += [TinyBlock(WIDTH, WIDTH), _conv(WIDTH, 3)]
    return nn.Sequential(*layers)
