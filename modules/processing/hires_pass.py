"""The hires. fix second pass (A1111 `StableDiffusionProcessingTxt2Img.sample_hr_pass`, reference §8).

* Upscale the first pass: latent modes interpolate the latent; pixel upscalers decode, resize and encode again
  (built-ins with PIL, model upscalers of `ctx.upscalers` at their native scale then Lanczos to the target).
* With `firstpass_image` (the ✨ "upscale this image with hires" job) there is no first pass: a latent upscaler
  starts from the VAE encoding of the image, a pixel upscaler from the image itself (A1111 1.8 `txt2img_upscale`).
* `hr_checkpoint_name` (other than "Use same checkpoint") loads that checkpoint for the second pass; the job's
  model is loaded back before the next batch (`Job.base_model`) and the job's previous model after the job.
* New noise from the same seeds at the new size; exactly `hr steps or steps` steps (fix-steps branch) with the
  hires sampler/scheduler and hires prompts; `img2img_extra_noise` adds `noise · extra` ("Extra noise").
* `save_images_before_highres_fix` saves each decoded first-pass image as a "-before-highres-fix" sample copy.
* `hires_fix_use_firstpass_conds` (A1111 `setup_conds`): without a hires checkpoint, the hires prompts are encoded
  with the first pass's extra networks (their text-encoder weights); the hires prompt's networks still patch the
  UNet of the second pass.
* A refiner takes over at "Switch at" in the passes `hires_fix_refiner_pass` names ("second pass" by default; see
  `Job.refiner_factory`), with the hires prompts; the job's model is loaded back for the hires pass (A1111 reloads
  the selected checkpoint before `sample_hr_pass`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from PIL import Image

from modules.processing.conditioning import opt, use_networks
from modules.processing.hires import LATENT_UPSCALE_MODES, crop_latent, hires_target, upscale_latent
from modules.processing.hooks import ExtraNoiseParams
from modules.processing.image_ops import pil_to_tensor, resize_image
from modules.processing.img2img_init import txt2img_image_conditioning, upscaler_resizer
from modules.processing.intermediate_saves import save_copy
from modules.processing.params import ParamError, Txt2ImgParams
from modules.processing.sampling_glue import img2img_sigmas, img2img_steps, make_denoiser, model_schedule, sigmas_for
from modules.processing.tiny_vae import job_network, taesd_encode
from modules.processing.vae_io import encode_images, latent_factor

IMAGE_UPSCALERS: dict[str, Callable[[Image.Image, int, int], Image.Image]] = {
    "Lanczos": lambda im, w, h: im.resize((w, h), Image.Resampling.LANCZOS),
    "Nearest": lambda im, w, h: im.resize((w, h), Image.Resampling.NEAREST),
    "None": lambda im, w, h: im.resize((w, h), Image.Resampling.LANCZOS),
}
"""Pixel upscalers available to hires fix without an upscaler model (A1111's built-in Lanczos/Nearest/None)."""

SAME_CHECKPOINT = "Use same checkpoint"


def hires_model(run: Any, model: Any) -> Any:
    """The second-pass model: `hr_checkpoint_name` loaded (A1111 `hr_checkpoint_info`), else `model`."""
    name = getattr(run.params, "hr_checkpoint_name", None)
    if not name or name in (SAME_CHECKPOINT, "None"):
        return model
    return run.ctx.models.load(name)


def hires_pass(run: Any, model: Any, samples: torch.Tensor | None, index: slice, spec: Any, schedule: str | None,
               *, decode: Callable[[Any, Any, torch.Tensor], list[Image.Image]],
               post_sample: Callable[[Any, torch.Tensor], torch.Tensor]) -> list[Image.Image]:
    """Upscale `samples` (or `firstpass_image` when `samples` is None) and run the second pass; returns images."""
    p = run.params
    assert isinstance(p, Txt2ImgParams)
    if samples is not None and run.job.state.interrupted:
        # A1111 `sample_hr_pass`: interrupted during the first pass → its (incomplete) latent is the result
        return decode(run, model, post_sample(run, samples))
    upscaler = p.hr_upscaler or "Latent"
    batch = index.stop - index.start
    second = hires_model(run, model)
    f = latent_factor(second)
    target = hires_target(run.width, run.height, p.hr_scale, p.hr_resize_x, p.hr_resize_y, factor=f)
    run.hires_info = dict(target.infotext)
    up_w, up_h = target.upscale_width, target.upscale_height
    final_w, final_h = target.final_size
    registry = getattr(run.ctx, "upscalers", None)
    if upscaler not in LATENT_UPSCALE_MODES and upscaler not in IMAGE_UPSCALERS and (
            registry is None or upscaler not in registry):
        raise ParamError("hr_upscaler", f"unknown upscaler {upscaler!r}; available: "
                         f"{', '.join([*LATENT_UPSCALE_MODES, *(registry or IMAGE_UPSCALERS)])}")
    if samples is None:
        first_images = [_firstpass_image(run, p.firstpass_image)] * batch
        if upscaler in LATENT_UPSCALE_MODES:
            samples = _encode(run, second, first_images, run.seeds[index.start])
    else:
        first_images = None
        if opt(run.settings, "save_images_before_highres_fix", False):
            # A1111 `save_intermediate`: the first pass, fully decoded even for latent upscalers, as a sample copy
            before = decode(run, model, samples)
            for k, image in enumerate(before):
                save_copy(run, image, index.start + k, "-before-highres-fix")
            first_images = None if upscaler in LATENT_UPSCALE_MODES else before
    if upscaler in LATENT_UPSCALE_MODES:
        assert samples is not None
        latent = upscale_latent(samples.to(second.device), upscaler, target)
    else:
        if first_images is None:
            assert samples is not None
            first_images = decode(run, model, samples)
        # A1111 `resize_image(0, image, W, H, upscaler)`: built-ins resize; a model upscaler (ESRGAN, R-ESRGAN 4x+,
        # a file's name, …) upscales the decoded first pass at its native scale, then Lanczos to the target
        resizer = IMAGE_UPSCALERS.get(upscaler) or upscaler_resizer(upscaler, registry, run.settings, "hr_upscaler")
        resized = [resize_image(0, im, up_w, up_h, resizer) for im in first_images]
        latent = crop_latent(_encode(run, second, resized, run.seeds[index.start]), target)
    hr_steps = p.hr_second_pass_steps or p.steps
    # the hires prompts lose their `# comments` like the main prompts (the setting promises comments never reach
    # the generation; A1111 1.10 strips only the main prompts, Forge strips the hires ones too)
    prompts = [run.without_comments(p.hr_prompt)] * len(run.prompts) if p.hr_prompt else None
    negatives = [run.without_comments(p.hr_negative_prompt)] * len(run.prompts) if p.hr_negative_prompt else None
    # A1111 `setup_conds`: with `hires_fix_use_firstpass_conds` (and no hires checkpoint) the hires prompts are
    # encoded while the first pass's extra networks are active; the hires networks then act on the UNet only
    firstpass_conds = second is model and bool(opt(run.settings, "hires_fix_use_firstpass_conds", False))
    stage, pad = run.conds(second, spec, p.steps, index, final_w, final_h, prompts, negatives, hires_steps=hr_steps,
                           switch_networks=not firstpass_conds)
    if firstpass_conds:
        use_networks(run.encoder(second, final_w, final_h), (prompts or run.prompts)[index])
    stage.image_cond = txt2img_image_conditioning(second, batch, final_w, final_h)
    total, t_enc = img2img_steps(hr_steps, p.denoising_strength, fix_steps=True)
    denoiser = make_denoiser(second, spec, model_schedule(second))
    sigmas = img2img_sigmas(sigmas_for(spec, total, schedule, denoiser, run.settings, second.is_sdxl), total, t_enc)
    rng = run.rng(index, final_w, final_h, model=second)
    noise = rng.first().to(latent)
    x = latent + noise * sigmas[0]
    extra = float(opt(run.settings, "img2img_extra_noise", 0.0))
    if extra > 0:
        run.extra_fields["Extra noise"] = extra
        params = ExtraNoiseParams(noise, latent, x)
        run.hooks.fire("extra_noise", params)
        x = x + params.noise * extra
    refiner, switch_at = run.refiner_factory(spec, p.steps, index, final_w, final_h, second_pass=True,
                                             prompts=prompts, negatives=negatives, hires_steps=hr_steps)
    if refiner is not None:
        run.extra_fields["Refiner switch at"] = switch_at
    run.before_sampling(x, noise, stage)
    out = run.runner(spec, rng, index, pad, second_pass=True).sample(stage, x, sigmas, refiner, switch_at)
    decoder = (run.ctx.models.current or second) if refiner is not None else second  # the refiner once it took over
    return decode(run, decoder, post_sample(run, out))


def _firstpass_image(run: Any, image: Any) -> Image.Image:
    """The ✨ job's input as RGB at the first-pass size (resized with a notice when it differs)."""
    if not isinstance(image, Image.Image):
        raise ValueError("firstpass_image: expected an image")
    image = image.convert("RGB")
    if image.size != (run.width, run.height):
        run.notices.append(f"firstpass_image {image.width}x{image.height} resized to {run.width}x{run.height}")
        image = resize_image(0, image, run.width, run.height)
    return image


def _encode(run: Any, model: Any, images: list[Image.Image], seed: int) -> torch.Tensor:
    """Images → latents for the hires pass: the VAE, or TAESD with `sd_vae_encode_method` "TAESD" (A1111
    `sample_hr_pass` / `txt2img_image_conditioning` firstpass: infotext "VAE Encoder: TAESD")."""
    encoder = job_network(run.ctx.tiny_vaes, run.settings, "sd_vae_encode_method", model, run.notices)
    if encoder is None:
        return encode_images(model, images, seed=seed)
    run.extra_fields["VAE Encoder"] = "TAESD"
    return taesd_encode(encoder, pil_to_tensor(images))
