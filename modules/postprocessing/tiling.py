"""Tiled inference of an image-to-image network, and PIL ↔ tensor conversion in spandrel's convention.

A1111 (`modules/upscaler_utils.py::upscale_with_model`) splits the image into `ESRGAN_tile`-sized tiles (192) that
overlap by `ESRGAN_tile_overlap` pixels (8), with tile origins spread evenly from 0 to `size - tile`
(`images.split_grid`), runs the model on each, and blends the overlaps of neighbouring tiles with a linear ramp
(`images.combine_grid`). The same geometry is used here, but tiles are blended in float tensor space (A1111 pastes
8-bit PIL tiles through masks), and a tile never extends past the image (A1111 pads small images with black).
spandrel's `ImageModelDescriptor.__call__` takes `(1, C, H, W)` tensors in [0, 1] on the model's device and dtype
and returns `(1, C, H·scale, W·scale)` in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

TensorFn = Callable[[torch.Tensor], torch.Tensor]


def pil_to_tensor(image: Image.Image, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """RGB image → `(1, 3, H, W)` in [0, 1] (spandrel's input convention)."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).to(device=device, dtype=dtype)


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """`(1, 3, H, W)` in [0, 1] → RGB image, clamped and rounded to 8 bits."""
    array = (tensor[0].detach().float().cpu().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).numpy(), "RGB")


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis: `ceil((L - overlap) / (tile - overlap))` tiles spread evenly (A1111 split_grid)."""
    if tile >= length:
        return [0]
    overlap = min(max(overlap, 0), tile - 1)
    count = math.ceil((length - overlap) / (tile - overlap))
    if count <= 1:
        return [0]
    step = (length - tile) / (count - 1)
    return sorted({min(int(i * step), length - tile) for i in range(count)})


def _ramp(start: int, size: int, fade: int, total: int) -> torch.Tensor:
    """Blend weights of one tile along one axis: linear fade-in/out over `fade` pixels, except at image borders."""
    weights = torch.ones(size)
    if fade > 0:
        ramp = (torch.arange(fade, dtype=torch.float32) + 1) / (fade + 1)
        n = min(fade, size)
        if start > 0:
            weights[:n] = torch.minimum(weights[:n], ramp[:n])
        if start + size < total:
            weights[size - n:] = torch.minimum(weights[size - n:], ramp[:n].flip(0))
    return weights


def tiled_apply(fn: TensorFn, image: torch.Tensor, scale: int, tile: int, overlap: int, *,
                progress: bool = False) -> torch.Tensor:
    """Run `fn` (a scale-`scale` network on `(1, C, h, w)`) over `image` in overlapping tiles and blend the outputs.

    `tile <= 0` or an image no larger than one tile runs `fn` once on the whole image (A1111: tile 0 = no tiling).
    Overlaps are blended with linear ramps over `overlap · scale` output pixels, so for a network whose receptive
    field fits inside the overlap the result equals the untiled one. The accumulator lives on the CPU in float32.
    `progress` shows a "Tiled upscale" bar over the tiles in the console (A1111 `enable_upscale_progressbar`).
    """
    _, _, height, width = image.shape
    if tile <= 0 or (height <= tile and width <= tile):
        return fn(image).float().cpu()
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    th, tw = min(tile, height), min(tile, width)
    fade = max(overlap, 0) * scale
    out: torch.Tensor | None = None
    weight = torch.zeros(1, 1, height * scale, width * scale)
    bar = tqdm(desc="Tiled upscale", total=len(ys) * len(xs), disable=not progress, leave=False)
    for y in ys:
        wy = _ramp(y * scale, th * scale, fade, height * scale)
        for x in xs:
            result = fn(image[:, :, y:y + th, x:x + tw]).float().cpu()
            if out is None:
                out = torch.zeros(1, result.shape[1], height * scale, width * scale)
            wx = _ramp(x * scale, tw * scale, fade, width * scale)
            mask = (wy[:, None] * wx[None, :])[None, None]
            oy, ox = y * scale, x * scale
            out[:, :, oy:oy + th * scale, ox:ox + tw * scale] += result * mask
            weight[:, :, oy:oy + th * scale, ox:ox + tw * scale] += mask
            bar.update(1)
    bar.close()
    assert out is not None
    return out / weight.clamp_min(1e-8)
