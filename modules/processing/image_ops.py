"""Pixel-space image operations of img2img and hires fix, with A1111's geometry.

Resize modes follow A1111 `images.resize_image` (reference §3.3): 0 "Just resize", 1 "Crop and resize"
(cover, centre-crop), 2 "Resize and fill" (fit, then stretch the edge rows/columns into the gaps), 3 "Just resize
(latent upscale)" (the image is resized like 0; the latent is upscaled later).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

Resizer = Callable[[Image.Image, int, int], Image.Image]


def lanczos(image: Image.Image, width: int, height: int) -> Image.Image:
    """Plain Lanczos resize, A1111's default when no upscaler is named."""
    return image.resize((width, height), resample=Image.Resampling.LANCZOS)


def resize_image(mode: int, image: Image.Image, width: int, height: int, resizer: Resizer = lanczos) -> Image.Image:
    """Resize `image` to `width`×`height` by A1111's resize mode (0–3); `resizer` does the actual scaling."""
    if mode in (0, 3):
        return resizer(image, width, height)
    ratio = width / height
    src_ratio = image.width / image.height
    if mode == 1:
        src_w = width if ratio > src_ratio else image.width * height // image.height
        src_h = height if ratio <= src_ratio else image.height * width // image.width
        resized = resizer(image, src_w, src_h)
        result = Image.new("RGB", (width, height))
        result.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
        return result
    if mode == 2:
        src_w = width if ratio < src_ratio else image.width * height // image.height
        src_h = height if ratio >= src_ratio else image.height * width // image.width
        resized = resizer(image, src_w, src_h)
        result = Image.new("RGB", (width, height))
        result.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
        if ratio < src_ratio:
            fill = height // 2 - src_h // 2
            if fill > 0:
                result.paste(resized.resize((width, fill), box=(0, 0, width, 0)), box=(0, 0))
                result.paste(resized.resize((width, fill), box=(0, resized.height, width, resized.height)),
                             box=(0, fill + src_h))
        elif ratio > src_ratio:
            fill = width // 2 - src_w // 2
            if fill > 0:
                result.paste(resized.resize((fill, height), box=(0, 0, 0, height)), box=(0, 0))
                result.paste(resized.resize((fill, height), box=(resized.width, 0, resized.width, height)),
                             box=(fill + src_w, 0))
        return result
    raise ValueError(f"resize_mode must be 0-3, got {mode}")


def pil_to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """RGB images → float tensor (B, 3, H, W) in [-1, 1], the VAE's input range."""
    arrays = [np.asarray(im.convert("RGB"), dtype=np.float32) / 127.5 - 1.0 for im in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def decoded_to_uint8(samples: torch.Tensor) -> np.ndarray:
    """Decoded tensor (B, 3, H, W) in [-1, 1] → uint8 array (B, H, W, 3), exactly as A1111 converts.

    A1111 `processing.py` (`process_images_inner`, and `sd_samplers_common.single_sample_to_image` for previews):
    `torch.clamp((x + 1.0) / 2.0, 0, 1)` in float32, then `255. * array` and `.astype(np.uint8)`, which truncates
    (e.g. 0.999 → 254, not 255). Every decoded or preview image goes through this one function.
    """
    unit = torch.clamp((samples.detach().float().cpu() + 1.0) / 2.0, min=0.0, max=1.0)
    return (unit.permute(0, 2, 3, 1).numpy() * np.float32(255.0)).astype(np.uint8)


def tensor_to_pil(samples: torch.Tensor) -> list[Image.Image]:
    """Decoded tensor (B, 3, H, W) in [-1, 1] → RGB images (`decoded_to_uint8`)."""
    return [Image.fromarray(a) for a in decoded_to_uint8(samples)]


def flatten_alpha(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Composite a transparent image onto a flat background (A1111 `images.flatten` for img2img inputs)."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (*background, 255))
        base.alpha_composite(rgba)
        return base.convert("RGB")
    return image.convert("RGB")
