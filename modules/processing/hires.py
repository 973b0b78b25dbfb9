"""Hires. fix geometry and latent upscaling (A1111 reference §8).

Target size rules (A1111 `StableDiffusionProcessingTxt2Img.init`): both resize fields 0 → scale by `hr_scale`;
one field set → keep the aspect ratio; both set → scale to *cover* the target keeping the aspect ratio, then
centre-crop the upscaled latent by (upscaled − target) / f on each axis, where f is the VAE's downscale factor
(8 for every released SD/SDXL VAE; A1111 hard-codes `opt_f = 8`, here it is a parameter so other VAEs work).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

LATENT_SCALE = 8
"""Pixels per latent cell of the SD/SDXL KL VAE (the default `factor`)."""

# name → (interpolation mode, antialias); the names and modes of A1111's `shared.latent_upscale_modes`.
LATENT_UPSCALE_MODES: dict[str, tuple[str, bool]] = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}


@dataclass(frozen=True)
class HiresTarget:
    """Where the second pass goes: the upscaled size, the final size after cropping, and the infotext entry."""

    upscale_width: int
    upscale_height: int
    truncate_x: int   # latent cells to crop in x (split between the two sides)
    truncate_y: int
    infotext: dict[str, object]
    factor: int = LATENT_SCALE  # pixels per latent cell of the VAE

    @property
    def final_size(self) -> tuple[int, int]:
        return (self.upscale_width - self.truncate_x * self.factor,
                self.upscale_height - self.truncate_y * self.factor)


def hires_target(width: int, height: int, hr_scale: float, hr_resize_x: int, hr_resize_y: int,
                 factor: int = LATENT_SCALE) -> HiresTarget:
    """Compute the hires target of a `width`×`height` first pass (A1111 rules, see module docstring); `factor` is
    the VAE's pixels per latent cell."""
    if factor < 1:
        raise ValueError(f"latent factor must be >= 1, got {factor}")
    if hr_resize_x == 0 and hr_resize_y == 0:
        return HiresTarget(int(width * hr_scale), int(height * hr_scale), 0, 0, {"Hires upscale": hr_scale}, factor)
    info: dict[str, object] = {"Hires resize": f"{hr_resize_x}x{hr_resize_y}"}
    if hr_resize_y == 0:
        return HiresTarget(hr_resize_x, hr_resize_x * height // width, 0, 0, info, factor)
    if hr_resize_x == 0:
        return HiresTarget(hr_resize_y * width // height, hr_resize_y, 0, 0, info, factor)
    if width / height < hr_resize_x / hr_resize_y:
        up_w, up_h = hr_resize_x, hr_resize_x * height // width
    else:
        up_w, up_h = hr_resize_y * width // height, hr_resize_y
    return HiresTarget(up_w, up_h, (up_w - hr_resize_x) // factor, (up_h - hr_resize_y) // factor, info, factor)


def upscale_latent(latent: torch.Tensor, mode_name: str, target: HiresTarget) -> torch.Tensor:
    """Interpolate a latent to the hires size with one of the latent upscale modes, then apply the centre crop."""
    if mode_name not in LATENT_UPSCALE_MODES:
        raise ValueError(f"unknown latent upscale mode {mode_name!r}; choose from {list(LATENT_UPSCALE_MODES)}")
    mode, antialias = LATENT_UPSCALE_MODES[mode_name]
    size = (target.upscale_height // target.factor, target.upscale_width // target.factor)
    kwargs = {"antialias": antialias} if mode in ("bilinear", "bicubic") else {}
    up = F.interpolate(latent.float(), size=size, mode=mode, **kwargs).to(latent.dtype)
    return crop_latent(up, target)


def crop_latent(latent: torch.Tensor, target: HiresTarget) -> torch.Tensor:
    """Centre-crop by the truncation cells: floor half on the start side, ceil half on the end side (A1111)."""
    ty, tx = target.truncate_y, target.truncate_x
    if tx == 0 and ty == 0:
        return latent
    h, w = latent.shape[-2:]
    return latent[..., ty // 2: h - (ty + 1) // 2, tx // 2: w - (tx + 1) // 2]
