"""VAE encode/decode with the model's latent scale factor, NaN retry, and per-job tiling (circular padding).

* Latents are `vae.encode(x).sample() · scale_factor` (0.18215 SD1/SD2, 0.13025 SDXL; A1111
  `get_first_stage_encoding`), drawn with a generator seeded from the job's first seed so runs repeat.
* Decoding a NaN result retries in fp32 and reports a notice (A1111 "Web UI will now convert VAE into 32-bit
  float and retry", setting `auto_vae_precision`).
* Tiling (A1111 setting `tiling`): every Conv2d of the UNet and VAE pads circularly for the duration of the job;
  the previous padding modes are put back afterwards, whatever happens (no torch class is patched).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
from PIL import Image

from modules.memory.precision import decode_with_nan_retry
from modules.processing.image_ops import pil_to_tensor, tensor_to_pil
from modules.processing.job_timing import JobTimes

Tensor = torch.Tensor


def latent_factor(model: Any) -> int:
    """Pixels per latent cell: 2^(levels − 1) of the VAE (8 for every released SD/SDXL VAE)."""
    config = getattr(model.vae, "config", None)
    return 2 ** (len(config.ch_mult) - 1) if config is not None else 8


def _vae_dtype(model: Any) -> torch.dtype:
    return next(model.vae.parameters()).dtype


def encode_tensor(model: Any, pixels: Tensor, seed: int = 0, sample: bool = True) -> Tensor:
    """(B, 3, H, W) in [-1, 1] → scaled latents (B, 4, H/8, W/8) in float32."""
    generator = torch.Generator(device=pixels.device).manual_seed(int(seed))
    with torch.no_grad():
        dist = model.vae.encode(pixels.to(_vae_dtype(model)))
        latent = dist.sample(generator) if sample else dist.mode()
    return latent.float() * float(model.architecture.latent_scale_factor)


def encode_images(model: Any, images: list[Image.Image], seed: int = 0) -> Tensor:
    """RGB images → scaled latents."""
    return encode_tensor(model, pil_to_tensor(images), seed)


def decode_latents(model: Any, latents: Tensor, settings: Any, times: JobTimes | None = None
                   ) -> tuple[list[Image.Image], str | None]:
    """Scaled latents → RGB images; returns the fp32-retry notice when the half-precision decode gave NaN.
    `times` books the VAE call as "VAE" and the conversion to PIL as "to PIL" (`modules.processing.job_timing`)."""
    scale = float(model.architecture.latent_scale_factor)
    auto = bool(settings.get("auto_vae_precision", True)) if hasattr(settings, "get") else True
    bf16 = bool(settings.get("auto_vae_precision_bfloat16", False)) if hasattr(settings, "get") else False
    times = times if times is not None else JobTimes()
    with torch.no_grad(), times.measure("VAE"):
        result = decode_with_nan_retry(model.vae.decode, latents / scale, model.vae, model.dtypes,
                                       auto_vae_precision=auto, auto_vae_precision_bfloat16=bf16)
    with times.measure("to PIL"):
        return tensor_to_pil(result.images), result.message


_PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]


@contextmanager
def circular_padding(modules: list[Any], enabled: bool) -> Iterator[None]:
    """Make every Conv2d in `modules` pad circularly while the block runs (seamless tiling), then restore."""
    saved: list[tuple[torch.nn.Conv2d, _PaddingMode]] = []
    if enabled:
        for module in modules:
            for conv in module.modules():
                if isinstance(conv, torch.nn.Conv2d):
                    saved.append((conv, conv.padding_mode))
                    conv.padding_mode = "circular"
    try:
        yield
    finally:
        for conv, mode in saved:
            conv.padding_mode = mode
