"""A1111's "Approx NN" live-preview network (`modules/sd_vae_approx.py` `VAEApprox`): a small stack of eight
unpadded convolutions that maps latents to a half-size RGB preview, trained by A1111 on the SD VAE's outputs.

Forward pass (A1111 facts): nearest ×2 upsample of the latent, zero padding of 11 cells on every side, then each of
`conv1`…`conv8` (kernels 7, 5 and six 3s; widths 4→8→16→32→64→32→16→8→3) followed by leaky ReLU with slope 0.1
(also after the last one). The padding exactly compensates the 22 cells the valid convolutions remove, so an
h×w latent gives a 2h×2w image in roughly [-1, 1]. Weights: `models/VAE-approx/model.pt` (SD1/SD2) and
`vaeapprox-sdxl.pt` (SDXL), state dicts with keys `conv{1..8}.{weight,bias}`.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

_PAD = 11
_CHANNELS = (8, 16, 32, 64, 32, 16, 8, 3)
_KERNELS = (7, 5, 3, 3, 3, 3, 3, 3)


class VAEApprox(nn.Module):
    """Latents (B, 4, h, w), as the sampler holds them (scaled) → RGB (B, 3, 2h, 2w) in about [-1, 1]."""

    def __init__(self, latent_channels: int = 4) -> None:
        super().__init__()
        n_in = latent_channels
        for i, (n_out, k) in enumerate(zip(_CHANNELS, _KERNELS, strict=True), start=1):
            self.add_module(f"conv{i}", nn.Conv2d(n_in, n_out, k))
            n_in = n_out

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, size=(x.shape[2] * 2, x.shape[3] * 2), mode="nearest")
        x = F.pad(x, (_PAD, _PAD, _PAD, _PAD))
        for i in range(1, len(_CHANNELS) + 1):
            x = F.leaky_relu(getattr(self, f"conv{i}")(x), 0.1)
        return x
