"""Tiled VAE encode/decode for images too big to run in one piece.

The input is cut into overlapping tiles, each tile runs through the network on its own, and the outputs are
blended with weights that ramp linearly across the overlap (1 inside a tile, falling towards a neighbour's side;
image borders are not faded), then normalised by the summed weights. Same approach as diffusers'
``AutoencoderKL.enable_tiling`` and the blending of Jiménez 2023 "Mixture of Diffusers"; GroupNorm statistics are
per tile, so results are close to, not equal to, the untiled ones (exact when one tile covers the input).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .vae import AutoencoderKL, LatentDistribution


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile start offsets covering ``size`` with tiles of ``tile`` overlapping by at least ``overlap``."""
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def _ramp(length: int, fade: int, fade_start: bool, fade_end: bool, device: torch.device) -> Tensor:
    """1-D blend weights of one tile: linear ramp over ``fade`` samples at the faded ends, 1 elsewhere."""
    w = torch.ones(length, device=device, dtype=torch.float32)
    fade = min(fade, length // 2)
    if fade > 0:
        ramp = torch.arange(1, fade + 1, device=device, dtype=torch.float32) / (fade + 1)
        if fade_start:
            w[:fade] = ramp
        if fade_end:
            w[length - fade:] = ramp.flip(0)
    return w


def tiled_apply(
    fn: Callable[[Tensor], Tensor], x: Tensor, tile: int, overlap: int, scale: float, out_channels: int
) -> Tensor:
    """Run ``fn`` over overlapping ``tile``-sized tiles of ``x`` (B, C, H, W) whose outputs are ``scale`` times the
    tile size, and blend them into one (B, out_channels, H*scale, W*scale) tensor."""
    if tile <= overlap:
        raise ValueError(f"tile size {tile} must be larger than the overlap {overlap}")
    b, _, height, width = x.shape
    out_h, out_w = round(height * scale), round(width * scale)
    out = torch.zeros(b, out_channels, out_h, out_w, device=x.device, dtype=torch.float32)
    weight = torch.zeros(1, 1, out_h, out_w, device=x.device, dtype=torch.float32)
    fade = round(overlap * scale)
    ys, xs = _starts(height, tile, overlap), _starts(width, tile, overlap)
    for y0 in ys:
        for x0 in xs:
            piece = fn(x[:, :, y0 : y0 + tile, x0 : x0 + tile]).float()
            oy, ox = round(y0 * scale), round(x0 * scale)
            ph, pw = piece.shape[-2:]
            wy = _ramp(ph, fade, y0 > 0, y0 + tile < height, x.device)
            wx = _ramp(pw, fade, x0 > 0, x0 + tile < width, x.device)
            w = wy[:, None] * wx[None, :]
            out[:, :, oy : oy + ph, ox : ox + pw] += piece * w
            weight[:, :, oy : oy + ph, ox : ox + pw] += w
    return (out / weight).to(x.dtype)


def tiled_decode(vae: AutoencoderKL, z: Tensor, tile_size: int = 64, overlap: int = 16) -> Tensor:
    """Decode latents in ``tile_size`` x ``tile_size`` latent tiles overlapping by ``overlap`` latents."""
    return tiled_apply(vae.decode, z, tile_size, overlap, vae.config.downscale, vae.config.out_ch)


def tiled_encode(vae: AutoencoderKL, x: Tensor, tile_size: int = 512, overlap: int = 64) -> LatentDistribution:
    """Encode an image in pixel tiles (multiples of the VAE's downscale factor); the blended moments give the
    latent distribution."""
    f = vae.config.downscale
    if tile_size % f or overlap % f:
        raise ValueError(f"tile size {tile_size} and overlap {overlap} must be multiples of {f} pixels")
    if x.shape[-1] % f or x.shape[-2] % f:
        raise ValueError(f"image size {x.shape[-1]}x{x.shape[-2]} must be a multiple of {f} pixels to encode")
    moments = tiled_apply(vae.encode_moments, x, tile_size, overlap, 1.0 / f, 2 * vae.config.embed_dim)
    return LatentDistribution(moments)
