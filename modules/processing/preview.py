"""Live previews of the latent being sampled (A1111 "Live previews" settings, `sd_samplers_common.samples_to_image_grid`).

* `show_progress_type`: "Full" decodes with the model's VAE; "Approx cheap" maps latents to RGB by a fixed linear
  map, no VAE. The 4×3 matrices are the published least-squares fits of VAE-decoded colour onto latent channels for
  the SD1/SD2 VAE and for the SDXL VAE (A1111 `sd_vae_approx.cheap_approximation`): one tiny matmul per step.
  "Approx NN" runs A1111's small VAEApprox network (a 2h×2w image), "TAESD" the tiny autoencoder's decoder (full
  size); both are downloaded on first use (`modules.processing.tiny_vae`). When their file is not available (or
  fails to run) the preview uses "Approx cheap" and one log line says which file to put where.
* `show_progress_grid` (default on): every image of the batch, as a grid; off: the first image only.
* `live_preview_content`: "Combined" (the guided prediction), "Prompt" (the positive prompt's prediction) or
  "Negative prompt" (the negative prompt's prediction), as A1111 stores them from its CFG denoiser.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import torch
from PIL import Image

from modules.images import grid_rows, image_grid
from modules.processing.image_ops import tensor_to_pil
from modules.processing.tiny_vae import TinyVaes, approx_nn_images, taesd_images

log = logging.getLogger(__name__)
_warned: set[str] = set()

_SD1_COEFFS = (
    (0.298, 0.207, 0.208),
    (0.187, 0.286, 0.173),
    (-0.158, 0.189, 0.264),
    (-0.184, -0.271, -0.473),
)
_SDXL_COEFFS = (
    (0.3448, 0.4168, 0.4395),
    (-0.1953, -0.0290, 0.0250),
    (0.1074, 0.0886, -0.0163),
    (-0.3730, -0.2499, -0.2088),
)


def cheap_preview(latent: torch.Tensor, sdxl: bool = False) -> Image.Image:
    """First latent of a batch (B, 4, h, w) → an h×w RGB preview image (upscale in the browser if wanted).

    The approximate colours go through the same uint8 conversion as decoded images (`tensor_to_pil`; A1111
    `single_sample_to_image` clamps (x + 1) / 2 and truncates 255·x for previews too)."""
    coeffs = torch.tensor(_SDXL_COEFFS if sdxl else _SD1_COEFFS, dtype=torch.float32)
    rgb = torch.einsum("chw,cr->hwr", latent[0, :4].detach().float().cpu(), coeffs)
    return tensor_to_pil(rgb.permute(2, 0, 1).unsqueeze(0))[0]


def _setting(settings: Mapping[str, Any], key: str, default: Any) -> Any:
    try:
        return settings[key]
    except (KeyError, LookupError):
        return default


def preview_latents(settings: Mapping[str, Any], combined: torch.Tensor, cond: torch.Tensor | None,
                    uncond: torch.Tensor | None) -> torch.Tensor:
    """The latents `live_preview_content` asks for (the combined prediction when the other is not available)."""
    content = str(_setting(settings, "live_preview_content", "Prompt"))
    if content == "Prompt" and cond is not None:
        return cond
    if content == "Negative prompt" and uncond is not None:
        return uncond
    return combined


def live_preview(latents: torch.Tensor, settings: Mapping[str, Any], *, sdxl: bool = False,
                 decode: Callable[[torch.Tensor], list[Image.Image]] | None = None,
                 low_memory: bool = False, networks: TinyVaes | None = None) -> Image.Image:
    """The preview image of a batch of latents under the live-preview settings (see module docstring). With
    `--medvram`/`--lowvram` (`low_memory`) a "Full" preview would move the VAE onto the device at every preview, so
    it uses "Approx cheap" unless `live_preview_allow_lowvram_full` is on (A1111 1.10). `networks` provides the
    Approx NN / TAESD networks."""
    if not bool(_setting(settings, "show_progress_grid", True)):
        latents = latents[:1]
    images = preview_images(latents, settings, sdxl=sdxl, decode=decode, low_memory=low_memory, networks=networks)
    if len(images) == 1:
        return images[0]
    return image_grid(images, rows=grid_rows(len(images)))


def preview_images(latents: torch.Tensor, settings: Mapping[str, Any], *, sdxl: bool = False,
                   decode: Callable[[torch.Tensor], list[Image.Image]] | None = None,
                   low_memory: bool = False, networks: TinyVaes | None = None) -> list[Image.Image]:
    """One image per latent with the `show_progress_type` method (see `live_preview`); also what an interrupted
    job returns with `live_preview_fast_interrupt` (A1111 `samples_to_images_tensor`)."""
    method = str(_setting(settings, "show_progress_type", "Approx NN"))
    if method == "Full" and low_memory and not bool(_setting(settings, "live_preview_allow_lowvram_full", False)):
        method = "Approx cheap"
    images: list[Image.Image] | None = None
    if method == "Full" and decode is not None:
        images = decode(latents)
    elif method in ("Approx NN", "TAESD") and networks is not None:
        images = _network_preview(method, networks, latents, sdxl)
    if images is None:
        if method not in ("Approx cheap", "Full", "Approx NN", "TAESD") and method not in _warned:
            _warned.add(method)
            log.info("live preview method %r is not available here; previews use 'Approx cheap'", method)
        images = [cheap_preview(latents[i:i + 1], sdxl=sdxl) for i in range(latents.shape[0])]
    return images


def _network_preview(method: str, networks: TinyVaes, latents: torch.Tensor, sdxl: bool
                     ) -> list[Image.Image] | None:
    """Approx NN / TAESD preview images, or None (→ "Approx cheap") when the network is unavailable or fails."""
    net = networks.approx_nn(sdxl) if method == "Approx NN" else networks.decoder(sdxl)
    if net is None:
        return None
    try:
        return approx_nn_images(net, latents) if method == "Approx NN" else taesd_images(net, latents)
    except Exception as exc:  # a preview never fails the job (odd latent channels, out of memory, ...)
        if method not in _warned:
            _warned.add(method)
            log.warning("live preview %r failed (%s); previews use 'Approx cheap'", method, exc)
        return None
