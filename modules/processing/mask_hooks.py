"""The inpainting moments of the script hooks `on_mask_blend` and `postprocess_maskoverlay` (A1111 1.8+).

A1111 calls them where the mask is applied, and its built-in soft inpainting is a script using exactly these two:

* every sampling step, after guidance (`CFGDenoiser.apply_blend`): `MaskBlendArgs(current_latent=denoised, nmask,
  init_latent, mask, blended_latent=init_latent·mask + nmask·denoised, denoiser, sigma)`; the scripts' replaced
  `blended_latent` is what the sampler continues from;
* once after sampling (`StableDiffusionProcessingImg2Img.sample`): the same with the samples and without denoiser
  and sigma (`is_final_blend`);
* per image, after `postprocess_image` and before the untouched pixels are laid over it (`process_images_inner`):
  `PostProcessMaskOverlayArgs(index, mask_for_overlay, overlay_image)`; the overlay the scripts leave is used.

Here soft inpainting is built in: when it is on, its blend (and its overlay) is what the scripts receive as
`blended_latent` (and `overlay_image`), as if it were the first script to run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from PIL import Image, ImageOps

from modules.runtime.hook_params import MaskBlendArgs, PostprocessMaskOverlayArgs
from modules.sampling.cfg_denoiser import MaskBlend

Tensor = torch.Tensor


def sampling_blend(run: Any, init: Any, soft_blend: Callable[[Tensor, Tensor], Tensor] | None) -> MaskBlend:
    """The per-step blend for `SamplingRun.blend`: soft inpainting's blend (if on), then `on_mask_blend`."""
    p = run.params

    def blend(denoised: Tensor, blended: Tensor, sigma: Tensor, denoiser: Any) -> Tensor:
        if soft_blend is not None:
            blended = soft_blend(denoised, sigma)
        args = MaskBlendArgs(denoised, init.nmask, init.init_latent, init.mask, blended, denoiser=denoiser,
                             sigma=sigma)
        run.hooks.script("on_mask_blend", p, args)
        return args.blended_latent

    return blend


def final_blend(run: Any, init: Any, samples: Tensor, soft: bool) -> Tensor:
    """The blend after sampling: `samples·nmask + init_latent·mask` (soft inpainting keeps the samples as they
    are), then `on_mask_blend` with `is_final_blend`."""
    blended = samples if soft else samples * init.nmask + init.init_latent * init.mask
    args = MaskBlendArgs(samples, init.nmask, init.init_latent, init.mask, blended)
    run.hooks.script("on_mask_blend", run.params, args)
    return args.blended_latent


def soft_overlay_image(original: Image.Image, mask: Image.Image) -> Image.Image:
    """The RGBA overlay of soft inpainting: the original where the mask keeps it (alpha = 255 − mask)."""
    layer = original.convert("RGBA").resize(mask.size)
    layer.putalpha(ImageOps.invert(mask.convert("L")))
    return layer


def mask_overlay(run: Any, index: int, mask_for_overlay: Image.Image | None, overlay_image: Image.Image | None
                 ) -> tuple[Image.Image | None, Image.Image | None, bool]:
    """`postprocess_maskoverlay(p, PostProcessMaskOverlayArgs(index, mask, overlay))`; returns the mask and
    overlay the scripts left and whether a script replaced either of them."""
    args = PostprocessMaskOverlayArgs(index, mask_for_overlay, overlay_image)
    run.hooks.script("postprocess_maskoverlay", run.params, args)
    changed = args.mask_for_overlay is not mask_for_overlay or args.overlay_image is not overlay_image
    return args.mask_for_overlay, args.overlay_image, changed
