"""Soft inpainting (A1111 1.8 built-in "Soft inpainting", reference §3.3), implemented from its documented maths.

Parameters (infotext labels and UI defaults): Schedule bias 1, Preservation strength 0.5, Transition contrast boost
4, Mask influence 0, Difference threshold 0.5, Difference contrast 2; infotext adds "Soft inpainting enabled: True".
They are given like an always-on script: `params.alwayson_scripts["soft inpainting"] = {"args": [enabled, bias,
strength, boost, influence, threshold, contrast]}` (the order of A1111's script args) or as a dict by name.

During sampling, after guidance, the denoised latent is blended with the original one per latent pixel:

* mask per step: `t = nmask ** (sigma ** schedule_bias · preservation_strength)` (nmask 1 = regenerate); a
  blurred mask keeps more of the original where it is soft, more so at high sigma;
* blend: the channel vectors are lerped `(1 − t)·orig + t·denoised`, then rescaled to the length
  `((1 − t)·|orig|^p + t·|denoised|^p)^(1/p)` with p = transition contrast boost (p > 1 favours the longer vector,
  keeping detail where the two differ in magnitude);
* the hard final blend is skipped. For the overlay, the per-pixel distance between the final and original latents
  is smoothed (a weighted-percentile filter), divided by `threshold · s` where `s` comes from the mask
  (`mask_scalar = 1 − clamp(nmask)^(strength/2)`, mixed with 0.5 by `1 − mask influence`, mapped `m/(1−m)`),
  turned into opacity `1/(1 + d^contrast)`, smoothed by smootherstep and used (inverted) as the paste mask.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFilter

Tensor = torch.Tensor

SOFT_INPAINTING_TITLE = "soft inpainting"
LABELS = ("Schedule bias", "Preservation strength", "Transition contrast boost", "Mask influence",
          "Difference threshold", "Difference contrast")
NAMES = ("mask_blend_power", "mask_blend_scale", "inpaint_detail_preservation", "composite_mask_influence",
         "composite_difference_threshold", "composite_difference_contrast")


@dataclass(frozen=True)
class SoftInpaintingSettings:
    """The six soft-inpainting parameters (A1111 names and defaults)."""

    mask_blend_power: float = 1.0
    mask_blend_scale: float = 0.5
    inpaint_detail_preservation: float = 4.0
    composite_mask_influence: float = 0.0
    composite_difference_threshold: float = 0.5
    composite_difference_contrast: float = 2.0

    def infotext(self) -> dict[str, Any]:
        """Infotext entries: "Soft inpainting enabled" then the six labelled values."""
        values = [getattr(self, n) for n in NAMES]
        return {"Soft inpainting enabled": True, **dict(zip(LABELS, values, strict=True))}


def settings_from_params(params: Any) -> SoftInpaintingSettings | None:
    """Soft-inpainting settings from `params.alwayson_scripts` (title matched case-insensitively); None when absent
    or disabled. Raises ValueError naming the bad value."""
    scripts = {str(k).lower(): v for k, v in (getattr(params, "alwayson_scripts", None) or {}).items()}
    entry = scripts.get(SOFT_INPAINTING_TITLE)
    if entry is None:
        return None
    args = entry.get("args", entry) if isinstance(entry, Mapping) else entry
    if isinstance(args, Mapping):
        enabled = bool(args.get("enabled", True))
        values = {n: float(args[n]) for n in NAMES if n in args}
    elif isinstance(args, Sequence) and not isinstance(args, str):
        if not args:
            return None
        enabled = bool(args[0])
        if len(args) > 1 + len(NAMES):
            raise ValueError(f"soft inpainting: {len(args)} args, at most {1 + len(NAMES)}")
        values = {n: float(v) for n, v in zip(NAMES, args[1:], strict=False)}
    else:
        raise ValueError("soft inpainting: args must be a list or a mapping")
    if not enabled:
        return None
    settings = SoftInpaintingSettings(**values)
    if settings.inpaint_detail_preservation <= 0:
        raise ValueError("soft inpainting: Transition contrast boost must be > 0")
    return settings


def step_mask(settings: SoftInpaintingSettings, nmask: Tensor, sigma: Tensor | float) -> Tensor:
    """`nmask ** (sigma ** schedule_bias · preservation_strength)`: the per-step share of the denoised latent."""
    s = float(sigma.reshape(-1)[0]) if isinstance(sigma, Tensor) else float(sigma)
    return torch.pow(nmask.clamp(0, 1), (s ** settings.mask_blend_power) * settings.mask_blend_scale)


def latent_blend(settings: SoftInpaintingSettings, original: Tensor, denoised: Tensor, t: Tensor) -> Tensor:
    """Lerp the channel vectors, then give them the p-power interpolated length (see module docstring)."""
    t = t[:, :1] if t.dim() == 4 else t[None, :1]
    lerped = original * (1 - t) + denoised * t
    p = settings.inpaint_detail_preservation
    t64 = t.to(torch.float64)
    length = torch.linalg.vector_norm(lerped, dim=1, keepdim=True).to(torch.float64) + 1e-5
    wanted = ((torch.linalg.vector_norm(original, dim=1, keepdim=True).to(torch.float64) ** p) * (1 - t64)
              + (torch.linalg.vector_norm(denoised, dim=1, keepdim=True).to(torch.float64) ** p) * t64) ** (1 / p)
    return lerped * (wanted / length).to(lerped.dtype)


def make_blend(
    settings: SoftInpaintingSettings, init_latent: Tensor, nmask: Tensor
) -> Callable[[Tensor, Tensor], Tensor]:
    """The per-step blend `(denoised, sigma) -> latent` for `SamplingRun.blend`."""
    def blend(denoised: Tensor, sigma: Tensor) -> Tensor:
        return latent_blend(settings, init_latent.to(denoised), denoised, step_mask(settings, nmask, sigma).to(denoised))
    return blend


def smootherstep(x: np.ndarray) -> np.ndarray:
    """Perlin's smootherstep 6x⁵ − 15x⁴ + 10x³ on [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * x * (x * (6 * x - 15) + 10)


def weighted_percentile_filter(image: np.ndarray, low: float, high: float, radius: int = 2,
                               sigma: float = 1.5) -> np.ndarray:
    """For each pixel, the weighted mean of the neighbourhood values whose cumulative Gaussian weight (sorted by
    value) lies between the `low` and `high` fractions (A1111's weighted histogram filter, percentile window)."""
    h, w = image.shape
    padded = np.pad(image, radius, mode="edge")
    offsets = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
               if dy * dy + dx * dx <= radius * radius]
    values = np.stack([padded[radius + dy: radius + dy + h, radius + dx: radius + dx + w] for dy, dx in offsets])
    weights = np.array([np.exp(-(dy * dy + dx * dx) / (2 * sigma * sigma)) for dy, dx in offsets])
    weights = weights / weights.sum()
    order = np.argsort(values, axis=0)
    sorted_values = np.take_along_axis(values, order, axis=0)
    sorted_weights = weights[order]
    upper = np.cumsum(sorted_weights, axis=0)
    lower = upper - sorted_weights
    share = np.clip(np.minimum(upper, high) - np.maximum(lower, low), 0.0, None)
    total = share.sum(axis=0)
    mean = (sorted_values * share).sum(axis=0) / np.where(total > 0, total, 1.0)
    return np.where(total > 0, mean, np.median(values, axis=0))


def overlay_masks(settings: SoftInpaintingSettings, nmask: Tensor, original: Tensor, final: Tensor,
                  size: tuple[int, int]) -> list[Image.Image]:
    """One "L" paste mask per image (255 = take the generated pixel) at `size` from the latent difference."""
    latent_mask = nmask[:, 0].float().clamp(0, 1)
    scalar = 1 - latent_mask ** (settings.mask_blend_scale / 2)
    scalar = 0.5 * (1 - settings.composite_mask_influence) + scalar * settings.composite_mask_influence
    odds = (scalar / (1.00001 - scalar)).cpu().numpy()
    distance = torch.linalg.vector_norm(final.float() - original.float(), dim=1).cpu().numpy()
    masks = []
    for i, dist in enumerate(distance):
        smooth = weighted_percentile_filter(dist, 0.9, 1.0)
        smooth = weighted_percentile_filter(smooth, 0.25, 0.75)
        half = settings.composite_difference_threshold * odds[min(i, len(odds) - 1)]
        ratio = smooth / np.maximum(half, 1e-8)
        keep_original = smootherstep(1 / (1 + ratio ** settings.composite_difference_contrast))
        mask = Image.fromarray(((1 - keep_original) * 255).astype(np.uint8), "L").resize(size, Image.Resampling.LANCZOS)
        masks.append(mask.filter(ImageFilter.GaussianBlur(radius=4)))
    return masks


def composite(generated: Image.Image, original: Image.Image, mask: Image.Image) -> Image.Image:
    """The generated image where `mask` is white, the original where black (soft edges)."""
    base = original.convert("RGB").resize(generated.size)
    return Image.composite(generated.convert("RGB"), base, mask.resize(generated.size))
