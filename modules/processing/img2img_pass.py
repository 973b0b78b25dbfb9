"""One img2img/inpainting batch (A1111 `StableDiffusionProcessingImg2Img.sample` + the overlay in
`process_images_inner`): init latent, tail of the schedule, extra noise, sampling with the latent mask (hard or
soft inpainting), decode; the paste-back/overlay is returned as a per-image composite applied after the
`postprocess_image` hook, as A1111 orders it.

Also from A1111: `save_init_img` writes the init images once per job ("Init image hash" in the infotext);
`img2img_color_correction` matches each result's colours to its processed init image just before the composite
(with `save_images_before_color_correction`, a "-before-color-correction" copy, composited, is saved first);
`save_mask` / `save_mask_composite` write the inpainting mask and the masked result beside each image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from modules.processing.color_correction import apply_color_correction, setup_color_correction
from modules.processing.conditioning import opt
from modules.processing.hooks import ExtraNoiseParams
from modules.processing.img2img_init import img2img_resizer, prepare_img2img, unet_in_channels
from modules.processing.intermediate_saves import save_copy, save_init_images
from modules.processing.mask_hooks import final_blend, mask_overlay, sampling_blend, soft_overlay_image
from modules.processing.masks import apply_overlay
from modules.processing.params import Img2ImgParams
from modules.processing.sampling_glue import img2img_sigmas, img2img_steps, make_denoiser, model_schedule, sigmas_for
from modules.processing.soft_inpainting import composite, make_blend, overlay_masks, settings_from_params
from modules.processing.tiny_vae import job_network

Composite = Callable[[int, Image.Image], Image.Image]


@dataclass(frozen=True)
class SampleStart:
    """What a script's ``p.sample_start(start) -> starting latent`` gets: the running job, its model and sampler,
    the batch, its conds and sampling call, the encoded image, the batch's seeded noise and the sigmas to run."""

    run: Any
    model: Any
    spec: Any
    index: slice
    stage: Any
    sampling: Any
    init_latent: torch.Tensor
    noise: torch.Tensor
    sigmas: torch.Tensor


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
    save_init_images(run, list(p.init_images or []))
    encoder = job_network(run.ctx.tiny_vaes, run.settings, "sd_vae_encode_method", model, run.notices)
    if encoder is not None:
        run.extra_fields["VAE Encoder"] = "TAESD"  # A1111 img2img `init`: extra_generation_params['VAE Encoder']
    init = prepare_img2img(model, p, run.settings, w, h, index.stop - index.start, run.seeds[index], noise,
                           img2img_resizer(run.settings, getattr(run.ctx, "upscalers", None)), encoder=encoder)
    corrections = ([setup_color_correction(image) for image in init.processed]
                   if opt(run.settings, "img2img_color_correction", False) else None)
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
    mask_blend = sampling_blend(run, init, blend) if init.mask is not None else None  # + on_mask_blend
    image_cfg = p.image_cfg_scale if unet_in_channels(model) == 8 else None
    sampling = run.runner(spec, rng, index, pad, image_cfg_scale=image_cfg, mask=init.mask, nmask=init.nmask,
                          init_latent=init.init_latent, blend=mask_blend)
    refiner, switch_at = run.refiner_factory(spec, p.steps, index, w, h)
    start = getattr(p, "sample_start", None)
    if callable(start):  # a script supplies the starting latent (A1111 scripts replace `p.sample`: img2imgalt)
        x = start(SampleStart(run, model, spec, index, stage, sampling, init.init_latent, noise, sigmas))
    run.before_sampling(x, noise, stage)
    samples = sampling.sample(stage, x, sigmas, refiner, switch_at)
    if init.mask is not None and init.nmask is not None:
        samples = final_blend(run, init, samples, soft is not None)
    samples = post_sample(run, samples)
    images = decode(run, run.ctx.models.current or model, samples)
    overlay = _overlay(run, init, soft, samples, (w, h))
    overlay = _with_mask_saves(run, index, init, overlay)
    return images, _with_color_correction(run, index, corrections, overlay)


def _with_color_correction(run: Any, index: slice, corrections: list[Any] | None,
                           overlay: Composite | None) -> Composite | None:
    """The per-image composite: colour correction (and the copy saved before it), then the inpainting overlay."""
    if corrections is None:
        return overlay

    def corrected(i: int, image: Image.Image) -> Image.Image:
        if opt(run.settings, "save_images_before_color_correction", False):
            save_copy(run, overlay(i, image) if overlay is not None else image, index.start + i,
                      "-before-color-correction")
        image = apply_color_correction(corrections[min(i, len(corrections) - 1)], image)
        return overlay(i, image) if overlay is not None else image

    return corrected


def _with_mask_saves(run: Any, index: slice, init: Any, overlay: Composite | None) -> Composite | None:
    """With a mask, `save_mask` writes it ("-mask") and `save_mask_composite` the generated image cut out by it
    ("-mask-composite", transparent elsewhere) beside each result, whatever the sample-saving settings (A1111
    `process_images_inner`, which saves them after the overlay from the image before it). `return_mask` /
    `return_mask_composite` put the same two images in the job's results right after the image (A1111 appends
    them to `output_images`, so the web gallery and the API's `images` show them)."""
    wanted = [opt(run.settings, key, False)
              for key in ("save_mask", "save_mask_composite", "return_mask", "return_mask_composite")]
    if init.prepared_mask is None or overlay is None or not any(wanted):
        return overlay

    def with_saves(i: int, image: Image.Image) -> Image.Image:
        result = overlay(i, image)
        mask = init.prepared_mask.overlay_mask.convert("L").resize(result.size)
        cut = image.convert("RGBA").resize(result.size)
        cut.putalpha(mask)
        if wanted[0]:
            save_copy(run, mask.convert("RGB"), index.start + i, "-mask", always=True)
        if wanted[1]:
            save_copy(run, cut, index.start + i, "-mask-composite", always=True)
        returned = [im for flag, im in ((wanted[2], mask.convert("RGB")), (wanted[3], cut)) if flag]
        if returned:
            run.returned_extras[index.start + i] = returned
        return result

    return with_saves


def _overlay(run: Any, init: Any, soft: Any, samples: torch.Tensor, size: tuple[int, int]) -> Composite | None:
    """The inpainting paste-back/overlay of a batch (None without a mask), after the scripts'
    `postprocess_maskoverlay` (modules.processing.mask_hooks)."""
    if init.prepared_mask is None:
        return None
    region = init.prepared_mask.paste_region
    if soft is not None and init.nmask is not None:
        masks = overlay_masks(soft, init.nmask, init.init_latent, samples, size)

        def soft_composite(i: int, image: Image.Image) -> Image.Image:
            mask = masks[min(i, len(masks) - 1)]
            _, overlay, changed = mask_overlay(run, i, mask, soft_overlay_image(init.processed[i], mask))
            mixed = apply_overlay(image, overlay, None) if changed else composite(image, init.processed[i], mask)
            return apply_overlay(mixed, None, region, base=init.originals[i] if region else None)

        return soft_composite

    def hard_composite(i: int, image: Image.Image) -> Image.Image:
        _, overlay, _ = mask_overlay(run, i, init.prepared_mask.overlay_mask, init.overlays[i])
        return apply_overlay(image, overlay, region, base=init.originals[i] if region else None)

    return hard_composite
