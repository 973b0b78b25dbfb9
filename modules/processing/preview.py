"""Cheap live previews: latent → RGB by a fixed linear map, no VAE (A1111's "Approx cheap" preview mode).

The 4×3 matrices are the published least-squares fits of VAE-decoded colour onto latent channels for the SD1/SD2
VAE and for the SDXL VAE (A1111 `sd_vae_approx.cheap_approximation`). A preview costs one tiny matmul per step.
"""

from __future__ import annotations

import torch
from PIL import Image

from modules.processing.image_ops import tensor_to_pil

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
