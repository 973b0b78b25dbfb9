"""One img2img/inpainting batch (A1111 `StableDiffusionProcessingImg2Img.sample` + the overlay in
`process_images_inner`): init latent, tail of the schedule, extra noise, sampling with the latent mask (hard or
soft inpainting), decode; the paste-back/overlay is returned as a per-image composite applied after the
`postprocess_image` hook, as A1111 orders it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from PIL import Image

from modules.processing.conditioning import opt
from modules.processing.hooks import ExtraNoiseParams
from modules.processing.img2img_init import prepare_img2img, unet_in_channels
from modules.processing.masks import apply_overlay
from modules.processing.params import Img2ImgParams
from modules.processing.sampling_glue import img2img_sigmas, img2img_steps, make_denoiser, model_schedule, sigmas_for
from modules.processing.soft_inpainting import composite, make_blend, overlay_masks, settings_from_params

Composite = Callable[[int, Image.Image], Image.Image]


def img2img_batch(run: Any, model: Any, index: slice, spec: Any, schedule: str | None, multiplier: float, *,
                  decode: Callable[[Any, Any, torch.Tensor], list[Image.Image]],
                  post_sample: Callable[[Any, torch.Tensor], torch.Tensor]
                  ) -> tuple[list[Image.Image], Composite | None]:
    """Sample and decode one batch; returns the images and the inpainting composite (None without a mask)."""
    p = run.params
    assert isinstance(p, Img2ImgParams)
    w, h = run.width, run.height
    rng = run.rng(index, w, h)
    noise = rng.first().to(model.device)
    init = prepare_img2img(model, p, run.settings, w, h, index.stop - index.start, run.seeds[index], noise)
    stage, pad = run.conds(model, spec, p.steps, index, w, h)
    stage.image_cond = init.image_cond
    fix = bool(opt(run.settings, "img2img_fix_steps", False))
    total, t_enc = img2img_steps(p.steps, p.denoising_strength, fix)
    denoiser = make_denoiser(model, spec, model_schedule(model))
    sigmas = img2img_sigmas(sigmas_for(spec, total, schedule, denoiser, run.settings, model.is_sdxl), total, t_enc)
    noise = noise * multiplier
    x = init.init_latent + noise * sigmas[0]
    extra = float(opt(run.settings, "img2img_extra_noise", 0.0))
    if extra > 0:
        run.extra_fields["Extra noise"] = extra
        params = ExtraNoiseParams(noise, init.init_latent, x)
        run.hooks.fire("extra_noise", params)
        x = x + params.noise * extra
    soft = settings_from_params(p) if init.mask is not None else None
    blend = None
    if soft is not None and init.nmask is not None:
        run.extra_fields.update(soft.infotext())
        blend = make_blend(soft, init.init_latent, init.nmask)
    image_cfg = p.image_cfg_scale if unet_in_channels(model) == 8 else None
    sampling = run.runner(spec, rng, index, pad, image_cfg_scale=image_cfg, mask=init.mask, nmask=init.nmask,
                          init_latent=init.init_latent, blend=blend)
    refiner, switch_at = run.refiner_factory(spec, p.steps, index, w, h)
    run.before_sampling(x, noise, stage)
    samples = sampling.sample(stage, x, sigmas, refiner, switch_at)
    if init.mask is not None and init.nmask is not None and soft is None:
        samples = samples * init.nmask + init.init_latent * init.mask
    samples = post_sample(run, samples)
    images = decode(run, run.ctx.models.current or model, samples)
    if init.prepared_mask is None:
        return images, None
    region = init.prepared_mask.paste_region
    if soft is not None and init.nmask is not None:
        masks = overlay_masks(soft, init.nmask, init.init_latent, samples, (w, h))

        def soft_composite(i: int, image: Image.Image) -> Image.Image:
            mixed = composite(image, init.processed[i], masks[min(i, len(masks) - 1)])
            return apply_overlay(mixed, None, region, base=init.originals[i] if region else None)

        return images, soft_composite

    def hard_composite(i: int, image: Image.Image) -> Image.Image:
        return apply_overlay(image, init.overlays[i], region, base=init.originals[i] if region else None)

    return images, hard_composite
