"""Inpainting masks with A1111's rules (reference §3.3): binarise, invert, blur, "only masked" crop, fill, overlay."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps

from modules.processing.image_ops import resize_image


def binary_mask(mask: Image.Image, round_mask: bool = True) -> Image.Image:
    """Mask → 'L'; an image with real transparency uses its alpha; rounding maps > 128 to 255, else 0 (A1111)."""
    if mask.mode in ("RGBA", "LA") and mask.getextrema()[-1] != (255, 255):
        mask = mask.getchannel("A")
    mask = mask.convert("L")
    if round_mask:
        mask = mask.point(lambda v: 255 if v > 128 else 0)
    return mask


def gaussian_kernel_size(sigma: float) -> int:
    """A1111's blur kernel size for a mask blur of `sigma` pixels: 2·int(2.5·σ + 0.5) + 1."""
    return 2 * int(2.5 * sigma + 0.5) + 1


def _gaussian_1d(sigma: float) -> torch.Tensor:
    size = gaussian_kernel_size(sigma)
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-(x**2) / (2 * sigma * sigma))
    return kernel / kernel.sum()


def blur_mask(mask: Image.Image, blur_x: float, blur_y: float) -> Image.Image:
    """Separable Gaussian blur with A1111's kernel sizes and reflect-101 borders (its OpenCV GaussianBlur calls)."""
    array = torch.from_numpy(np.asarray(mask, dtype=np.float64))[None, None]
    for sigma, axis in ((blur_x, 3), (blur_y, 2)):
        if sigma <= 0:
            continue
        kernel = _gaussian_1d(sigma)
        half = kernel.numel() // 2
        if array.shape[axis] <= half:  # reflect padding needs a wider image; fall back to edge replication
            mode = "replicate"
        else:
            mode = "reflect"
        if axis == 3:
            padded = torch.nn.functional.pad(array, (half, half, 0, 0), mode=mode)
            array = torch.nn.functional.conv2d(padded, kernel.view(1, 1, 1, -1))
        else:
            padded = torch.nn.functional.pad(array, (0, 0, half, half), mode=mode)
            array = torch.nn.functional.conv2d(padded, kernel.view(1, 1, -1, 1))
    out = array[0, 0].round().clamp(0, 255).to(torch.uint8).numpy()
    return Image.fromarray(out, mode="L")


def crop_region(mask: Image.Image, padding: int) -> tuple[int, int, int, int] | None:
    """Bounding box (x1, y1, x2, y2) of the mask's non-zero pixels grown by `padding`; None for an empty mask."""
    box = mask.getbbox()
    if box is None:
        return None
    x1, y1, x2, y2 = box
    return max(x1 - padding, 0), max(y1 - padding, 0), min(x2 + padding, mask.width), min(y2 + padding, mask.height)


def _grow_span(lo: int, hi: int, diff: int, limit: int) -> tuple[int, int]:
    """Grow [lo, hi) by `diff` split around its centre, shifted back inside [0, limit] (one axis of A1111's rule)."""
    lo -= diff // 2
    hi += diff - diff // 2
    if hi >= limit:
        shift = hi - limit
        hi -= shift
        lo -= shift
    if lo < 0:
        hi -= lo
        lo = 0
    return lo, min(hi, limit)


def expand_to_aspect(region: tuple[int, int, int, int], width: int, height: int,
                     image_width: int, image_height: int) -> tuple[int, int, int, int]:
    """Grow a crop region to the processing aspect ratio width:height inside the image (A1111 expand_crop_region)."""
    x1, y1, x2, y2 = region
    target_ratio = width / height
    if (x2 - x1) / (y2 - y1) > target_ratio:
        y1, y2 = _grow_span(y1, y2, int((x2 - x1) / target_ratio - (y2 - y1)), image_height)
    else:
        x1, x2 = _grow_span(x1, x2, int((y2 - y1) * target_ratio - (x2 - x1)), image_width)
    return x1, y1, x2, y2


def fill_masked(image: Image.Image, mask: Image.Image) -> Image.Image:
    """Masked content "fill": replace masked pixels by repeatedly blurred surrounding colours (A1111 masking.fill).

    Unmasked pixels are composited over progressively less blurred copies, so the hole takes the average colour of
    its surroundings at decreasing radii (256, 64, 16, 4, 2, 0 px).
    """
    result = Image.new("RGBA", image.size)
    keep = Image.new("RGBa", image.size)
    keep.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    for radius, repeats in ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)):
        blurred = keep.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            result.alpha_composite(blurred)
    return result.convert("RGB")


@dataclass
class PreparedMask:
    """What img2img needs from a user mask: the mask at processing size, the overlay and where to paste back."""

    mask: Image.Image            # 'L' at processing size, white = regenerate
    overlay_mask: Image.Image    # 'L' at the original image size, used to keep the untouched pixels
    paste_region: tuple[int, int, int, int] | None  # (x, y, w, h) in the original image for "only masked"


def prepare_mask(mask: Image.Image, *, width: int, height: int, resize_mode: int, invert: bool, blur_x: float,
                 blur_y: float, round_mask: bool, only_masked: bool, padding: int) -> PreparedMask:
    """Binarise, invert, blur and (for "Only masked") crop the mask as A1111's img2img init does."""
    mask = binary_mask(mask, round_mask)
    if invert:
        mask = ImageOps.invert(mask)
    if blur_x > 0 or blur_y > 0:
        mask = blur_mask(mask, blur_x, blur_y)
    if only_masked:
        region = crop_region(mask, padding)
        if region is not None:
            region = expand_to_aspect(region, width, height, mask.width, mask.height)
            x1, y1, x2, y2 = region
            cropped = resize_image(2, mask.crop(region), width, height).convert("L")
            return PreparedMask(cropped, mask, (x1, y1, x2 - x1, y2 - y1))
    resized = resize_image(resize_mode, mask, width, height).convert("L")
    overlay = Image.fromarray(np.clip(np.asarray(resized, dtype=np.float32) * 2, 0, 255).astype(np.uint8), mode="L")
    return PreparedMask(resized, overlay, None)


def masked_overlay(original: Image.Image, overlay_mask: Image.Image) -> Image.Image:
    """The original pixels outside the mask as an RGBA layer (A1111 `overlay_images`)."""
    layer = Image.new("RGBa", original.size)
    layer.paste(original.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(overlay_mask.convert("L")))
    return layer.convert("RGBA")


def apply_overlay(generated: Image.Image, overlay: Image.Image | None, paste_region: tuple[int, int, int, int] | None,
                  base: Image.Image | None = None) -> Image.Image:
    """Paste the generated crop back into the base image (only masked) and lay the untouched pixels over it."""
    image = generated
    if paste_region is not None and base is not None:
        x, y, w, h = paste_region
        canvas = base.convert("RGB").copy()
        canvas.paste(resize_image(1, image, w, h), (x, y))
        image = canvas
    if overlay is None:
        return image
    composed = image.convert("RGBA")
    composed.alpha_composite(overlay)
    return composed.convert("RGB")


def latent_mask(mask: Image.Image, latent_width: int, latent_height: int, round_mask: bool) -> torch.Tensor:
    """The mask at latent size, (1, 1, h, w) in [0, 1] with 1 = regenerate (A1111 `nmask`)."""
    small = mask.convert("L").resize((latent_width, latent_height), resample=Image.Resampling.BICUBIC)
    values = torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0)
    if round_mask:
        values = values.round()
    return values[None, None]
