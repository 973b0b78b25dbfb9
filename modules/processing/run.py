"""The shared generation pipeline: `run_txt2img` and `run_img2img` (A1111 `process_images` / `process_images_inner`).

UI, API and scripts all call these. The orchestration reads as numbered stages:

1. resolve the settings snapshot (with `override_settings`) and the checkpoint (`sd_model_checkpoint` override);
2. apply styles to the prompts; round the size to multiples of 8 (notice);
3. seeds (`seed + i`, variation subseeds) and, per batch, prompts → scheduled/composable conds (cached per job);
4. noise (`ImageRNG`, `randn_source`, ENSD) and sampling through the registry (interrupt/skip/preview per step);
   the refiner takes over at "Switch at"; img2img starts from the noised init latent at the right sigma;
5. VAE decode (fp32 retry on NaN, notice); hires fix (txt2img) as an img2img-style second pass;
6. inpainting paste-back/overlay;
7. infotexts, saving (samples, grid, params.txt) and the `GenerationResult`.

An interrupt raises `Interrupted` out of the sampler callback before anything is saved; a skip drops the current
batch and continues with the next (A1111 "Skip"). Tiling applies circular padding for this job only.
"""

from __future__ import annotations

import dataclasses
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from modules.images import FilenameJob, build_infotext
from modules.processing.conditioning import PromptEncoder, build_conds, empty_chunk_cond, opt
from modules.processing.context import AppContext, GenerationResult
from modules.processing.extra_networks import activate_networks
from modules.processing.hires import (
    LATENT_SCALE,
    LATENT_UPSCALE_MODES,
    HiresTarget,
    crop_latent,
    hires_target,
    upscale_latent,
)
from modules.processing.image_ops import resize_image
from modules.processing.img2img_init import prepare_img2img, txt2img_image_conditioning, unet_in_channels
from modules.processing.infotext_fields import ImageContext, generation_fields
from modules.processing.masks import apply_overlay
from modules.processing.params import GenerationParams, Img2ImgParams, Txt2ImgParams, rounded_size
from modules.processing.rng import ImageRNG
from modules.processing.sampling_glue import (
    Pass,
    SamplingRun,
    img2img_sigmas,
    img2img_steps,
    make_denoiser,
    model_schedule,
    sigmas_for,
)
from modules.processing.save_outputs import SaveRequest, make_grid, save_outputs, wants_grid
from modules.processing.seeds import image_seeds, resolve_seed
from modules.processing.vae_io import circular_padding, decode_latents, encode_images, latent_factor
from modules.runtime.job_state import Skipped
from modules.sampling import display_schedule, initial_noise_scale, resolve_sampler

IMAGE_UPSCALERS: dict[str, Callable[[Image.Image, int, int], Image.Image]] = {
    "Lanczos": lambda im, w, h: im.resize((w, h), Image.Resampling.LANCZOS),
    "Nearest": lambda im, w, h: im.resize((w, h), Image.Resampling.NEAREST),
    "None": lambda im, w, h: im.resize((w, h), Image.Resampling.LANCZOS),
}
"""Pixel upscalers available to hires fix without an upscaler model (A1111's built-in Lanczos/Nearest/None)."""


@dataclass
class _Job:
    """State of one running job (A1111's `p` plus `Processed`)."""

    ctx: AppContext
    params: GenerationParams
    job: Any
    kind: str
    settings: Any = None
    model: Any = None
    width: int = 0
    height: int = 0
    prompts: list[str] = field(default_factory=list)
    negative_prompts: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    subseeds: list[int] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    extra_fields: dict[str, Any] = field(default_factory=dict)
    hires_info: dict[str, Any] = field(default_factory=dict)
    encoders: dict[tuple[int, int, int], PromptEncoder] = field(default_factory=dict)

    # -- stage 1: settings and checkpoint -------------------------------------------------------------------------
    def resolve(self) -> None:
        self.settings = self.ctx.settings.snapshot(self.params.override_settings)
        wanted = self.params.override_settings.get("sd_model_checkpoint")
        manager = self.ctx.models
        current = manager.current
        if wanted is not None:
            self.model = manager.load(wanted)
        elif current is not None:
            self.model = manager.load(current.checkpoint)
        else:
            self.model = manager.load(opt(self.settings, "sd_model_checkpoint", None))

    def base_model(self) -> Any:
        """The job's model, loaded again if a refiner pass swapped it out."""
        if self.ctx.models.current is not self.model:
            self.model = self.ctx.models.load(self.model.checkpoint)
        return self.model

    # -- stage 2: styles, size -------------------------------------------------------------------------------------
    def prepare_prompts(self) -> None:
        p = self.params
        prompt, negative = p.prompt, p.negative_prompt
        if self.ctx.styles is not None and p.styles:
            prompt = self.ctx.styles.apply_styles_to_prompt(prompt, p.styles)
            negative = self.ctx.styles.apply_negative_styles_to_prompt(negative, p.styles)
        count = p.batch_size * p.n_iter
        self.prompts, self.negative_prompts = [prompt] * count, [negative] * count
        self.width, self.height, notice = rounded_size(p.width, p.height)
        if notice:
            self.notices.append(notice)

    # -- stage 3: seeds and conds ----------------------------------------------------------------------------------
    def prepare_seeds(self) -> None:
        p = self.params
        seed = resolve_seed(p.seed)
        subseed = resolve_seed(p.subseed)
        self.seeds, self.subseeds = image_seeds(seed, subseed, p.subseed_strength, p.batch_size * p.n_iter)

    def encoder(self, model: Any, width: int, height: int) -> PromptEncoder:
        key = (id(model), width, height)
        if key not in self.encoders:
            self.encoders[key] = PromptEncoder(model, self.settings, width, height)
        return self.encoders[key]

    def conds(self, model: Any, spec: Any, steps: int, index: slice, width: int, height: int,
              prompts: list[str] | None = None, negatives: list[str] | None = None,
              hires_steps: int | None = None) -> tuple[Pass, torch.Tensor]:
        encoder = self.encoder(model, width, height)
        multiplier = 2 if spec.second_order else 1
        cond, uncond = build_conds(encoder, (prompts or self.prompts)[index],
                                   (negatives or self.negative_prompts)[index], steps * multiplier,
                                   None if hires_steps is None else hires_steps * multiplier)
        return Pass(model, cond, uncond), empty_chunk_cond(encoder)

    # -- stage 4: sampling -----------------------------------------------------------------------------------------
    def rng(self, index: slice, width: int, height: int) -> ImageRNG:
        p = self.params
        f = latent_factor(self.model)
        return ImageRNG((4, height // f, width // f), self.seeds[index], self.subseeds[index], p.subseed_strength,
                        p.seed_resize_from_h, p.seed_resize_from_w,
                        source=str(opt(self.settings, "randn_source", "GPU")), device=self.model.device,
                        eta_noise_seed_delta=int(opt(self.settings, "eta_noise_seed_delta", 0)), downscale=f)

    def runner(self, spec: Any, rng: ImageRNG, index: slice, pad_with: torch.Tensor, **kwargs: Any) -> SamplingRun:
        return SamplingRun(spec, self.params, self.settings, self.job, rng, self.seeds[index],
                           self.params.cfg_scale, pad_with=pad_with, **kwargs)

    def refiner_factory(self, spec: Any, steps: int, index: slice, width: int, height: int
                        ) -> tuple[Callable[[], Pass] | None, float]:
        p = self.params
        if not p.refiner_checkpoint or p.refiner_checkpoint == "None" or (p.refiner_switch_at or 1.0) >= 1.0:
            return None, 1.0

        def load() -> Pass:
            refiner = self.ctx.models.load(p.refiner_checkpoint)
            self.extra_fields["Refiner"] = refiner.checkpoint.short_title
            stage, _ = self.conds(refiner, spec, steps, index, width, height)
            stage.image_cond = txt2img_image_conditioning(refiner, index.stop - index.start, width, height)
            return stage

        return load, float(p.refiner_switch_at or 1.0)

    def sampler(self, name: str | None, scheduler: str | None) -> tuple[Any, str | None]:
        spec, suffix_schedule = resolve_sampler(name)
        return spec, scheduler or suffix_schedule

    # -- stage 7: infotext, save, result --------------------------------------------------------------------------
    def infotext(self, i: int, spec: Any, schedule: str | None) -> str:
        p, s = self.params, self.settings
        info = self.model.checkpoint
        image_cfg = p.image_cfg_scale if isinstance(p, Img2ImgParams) and unet_in_channels(self.model) == 8 else None
        image_ctx = ImageContext(
            seed=self.seeds[i], subseed=self.subseeds[i], sampler=spec.name,
            schedule_label=display_schedule(spec, schedule), model_name=info.model_name,
            model_hash=self.ctx.models.shorthash(info), vae_name=self.model.vae_name,
            clip_skip=int(opt(s, "CLIP_stop_at_last_layers", 1)),
            eta_noise_seed_delta=int(opt(s, "eta_noise_seed_delta", 0)), sampler_uses_ensd=spec.uses_ensd,
            randn_source=str(opt(s, "randn_source", "GPU")), tiling=self.tiling,
            conditional_mask_weight=(float(opt(s, "inpainting_mask_weight", 1.0))
                                     if unet_in_channels(self.model) == 9 else None),
            image_cfg_scale=image_cfg, extra=dict(self.extra_fields))
        fields = generation_fields(p, image_ctx, width=self.width, height=self.height, hires_info=self.hires_info)
        return build_infotext(self.prompts[i], self.negative_prompts[i], fields)

    @property
    def tiling(self) -> bool:
        return bool(self.params.tiling if self.params.tiling is not None else opt(self.settings, "tiling", False))

    def finish(self, images: list[Image.Image], done: list[int], spec: Any, schedule: str | None,
               started: float) -> GenerationResult:
        p = self.params
        self.job.state.set_textinfo("Saving")
        infotexts = [self.infotext(i, spec, schedule) for i in done]
        seeds = [self.seeds[i] for i in done]
        prompts = [self.prompts[i] for i in done]
        negatives = [self.negative_prompts[i] for i in done]
        grid = make_grid(images, p.batch_size, dict(self.settings)) if wants_grid(len(images), self.settings) else None
        info = self.model.checkpoint
        filename_job = FilenameJob(
            prompt=self.prompts[0], negative_prompt=self.negative_prompts[0], styles=tuple(p.styles),
            steps=p.steps, cfg_scale=p.cfg_scale, sampler_name=spec.name, scheduler=schedule,
            model_name=info.model_name, model_hash=self.ctx.models.shorthash(info), batch_size=p.batch_size,
            n_iter=p.n_iter, all_seeds=tuple(self.seeds), job_timestamp=self.job.state.job_timestamp)
        request = SaveRequest(self.kind, images, infotexts, seeds, prompts, negatives, p.batch_size, p.n_iter,
                              p.do_not_save_samples, p.do_not_save_grid, filename_job)
        saved = save_outputs(self.ctx, self.settings, request, grid) if images else []
        out_images, out_infos, first = list(images), list(infotexts), 0
        if grid is not None and opt(self.settings, "return_grid", True):
            out_images, out_infos, first = [grid, *images], [infotexts[0], *infotexts], 1
        return GenerationResult(
            images=out_images, infotexts=out_infos, all_prompts=prompts, all_negative_prompts=negatives,
            all_seeds=seeds, all_subseeds=[self.subseeds[i] for i in done], index_of_first_image=first,
            width=self.width, height=self.height, sampler_name=spec.name, cfg_scale=p.cfg_scale, steps=p.steps,
            seed=self.seeds[0], subseed=self.subseeds[0], subseed_strength=p.subseed_strength,
            sd_model_name=info.model_name, sd_model_hash=self.ctx.models.shorthash(info) or "",
            clip_skip=int(opt(self.settings, "CLIP_stop_at_last_layers", 1)),
            job_timestamp=self.job.state.job_timestamp, notices=list(dict.fromkeys(self.notices)),
            saved_paths=saved, time_taken=time.perf_counter() - started, peak_memory_bytes=peak_memory(self.model))


def peak_memory(model: Any) -> int:
    """Peak device memory of the job on CUDA, else the process's peak resident set size (bytes)."""
    device = getattr(model, "device", torch.device("cpu"))
    if torch.device(device).type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def _run_batches(run: _Job, one_batch: Callable[[slice], list[Image.Image]]) -> tuple[list[Image.Image], list[int]]:
    """Batch-count loop: `next_job` after each batch; a skip drops the batch, an interrupt propagates."""
    p = run.params
    state = run.job.state
    state.set_job_count(p.n_iter)
    images: list[Image.Image] = []
    done: list[int] = []
    # extra networks: LoRA/hypernetwork patches and TI for the job, restored on any exit (extra_networks.py)
    with activate_networks(run):
        for n in range(p.n_iter):
            if state.should_stop:
                break
            index = slice(n * p.batch_size, (n + 1) * p.batch_size)
            try:
                images.extend(one_batch(index))
                done.extend(range(index.start, index.stop))
            except Skipped:
                pass
            state.next_job()
    state.check()
    return images, done


def _decode(run: _Job, model: Any, latents: torch.Tensor) -> list[Image.Image]:
    images, notice = decode_latents(model, latents, run.settings)
    if notice:
        run.notices.append(notice)
    return images


def run_txt2img(ctx: AppContext, params: Txt2ImgParams, job: Any) -> GenerationResult:
    """txt2img (+ hires fix, refiner) for `params`; returns the images, seeds and infotexts."""
    started = time.perf_counter()
    run = _Job(ctx, params, job, "txt2img")
    run.resolve()
    run.prepare_prompts()
    run.prepare_seeds()
    spec, schedule = run.sampler(params.sampler_name, params.scheduler)
    hr_spec, hr_schedule = spec, schedule
    target = None
    if params.enable_hr:
        target = hires_target(run.width, run.height, params.hr_scale, params.hr_resize_x, params.hr_resize_y)
        run.hires_info = dict(target.infotext)
        if params.hr_sampler_name and params.hr_sampler_name != "Use same sampler":
            hr_spec, hr_schedule = run.sampler(params.hr_sampler_name, None)
        if params.hr_scheduler and params.hr_scheduler != "Use same scheduler":
            hr_schedule = params.hr_scheduler
        if params.hr_checkpoint_name and params.hr_checkpoint_name != "Use same checkpoint":
            run.notices.append("Hires checkpoint is not supported yet; the first-pass checkpoint was used")

    def one_batch(index: slice) -> list[Image.Image]:
        model = run.base_model()
        with circular_padding([model.unet, model.vae], run.tiling):
            return _txt2img_batch(run, model, index, spec, schedule, hr_spec, hr_schedule, target)

    images, done = _run_batches(run, one_batch)
    return run.finish(images, done, spec, schedule, started)


def _txt2img_batch(run: _Job, model: Any, index: slice, spec: Any, schedule: str | None, hr_spec: Any,
                   hr_schedule: str | None, target: Any) -> list[Image.Image]:
    p = run.params
    assert isinstance(p, Txt2ImgParams)
    batch = index.stop - index.start
    w, h = run.width, run.height
    stage, pad = run.conds(model, spec, p.steps, index, w, h)
    stage.image_cond = txt2img_image_conditioning(model, batch, w, h)
    denoiser = make_denoiser(model, spec, model_schedule(model))
    sigmas = sigmas_for(spec, p.steps, schedule, denoiser, run.settings, model.is_sdxl)
    rng = run.rng(index, w, h)
    noise = rng.first().to(model.device)
    x = noise * initial_noise_scale(spec, sigmas[0], bool(opt(run.settings, "sgm_noise_multiplier", False)))
    refiner, switch_at = run.refiner_factory(spec, p.steps, index, w, h)
    if refiner is not None:
        run.extra_fields["Refiner switch at"] = switch_at
    samples = run.runner(spec, rng, index, pad).sample(stage, x, sigmas, refiner, switch_at)
    model = run.ctx.models.current or model
    if target is None:
        return _decode(run, model, samples)
    return _hires_pass(run, run.base_model(), samples, index, hr_spec, hr_schedule, target)


def _latent_target(target: HiresTarget, factor: int) -> HiresTarget:
    """`hires.py` counts 8 pixels per latent cell; rescale the target for a VAE with another factor."""
    if factor == LATENT_SCALE:
        return target
    return dataclasses.replace(target, upscale_width=target.upscale_width * LATENT_SCALE // factor,
                               upscale_height=target.upscale_height * LATENT_SCALE // factor,
                               truncate_x=target.truncate_x * LATENT_SCALE // factor,
                               truncate_y=target.truncate_y * LATENT_SCALE // factor)


def _hires_pass(run: _Job, model: Any, samples: torch.Tensor, index: slice, spec: Any, schedule: str | None,
                target: Any) -> list[Image.Image]:
    """A1111 hires fix: upscale (latent or pixels), new noise at the new size, img2img with exactly hr steps."""
    p = run.params
    assert isinstance(p, Txt2ImgParams)
    upscaler = p.hr_upscaler or "Latent"
    batch = index.stop - index.start
    up_w, up_h = target.upscale_width, target.upscale_height
    final_w, final_h = target.final_size
    if upscaler in LATENT_UPSCALE_MODES:
        latent = upscale_latent(samples, upscaler, _latent_target(target, latent_factor(model)))
    elif upscaler in IMAGE_UPSCALERS:
        first = _decode(run, model, samples)
        if opt(run.settings, "save_images_before_highres_fix", False):
            run.notices.append("saving images before hires fix is not supported yet")
        resized = [resize_image(0, im, up_w, up_h, IMAGE_UPSCALERS[upscaler]) for im in first]
        latent = crop_latent(encode_images(model, resized, seed=run.seeds[index.start]),
                             _latent_target(target, latent_factor(model)))
    else:
        raise ValueError(f"hr_upscaler: unknown upscaler {upscaler!r}; available: "
                         f"{', '.join([*LATENT_UPSCALE_MODES, *IMAGE_UPSCALERS])}")
    hr_steps = p.hr_second_pass_steps or p.steps
    prompts = [p.hr_prompt] * len(run.prompts) if p.hr_prompt else None
    negatives = [p.hr_negative_prompt] * len(run.prompts) if p.hr_negative_prompt else None
    stage, pad = run.conds(model, spec, p.steps, index, final_w, final_h, prompts, negatives, hires_steps=hr_steps)
    stage.image_cond = txt2img_image_conditioning(model, batch, final_w, final_h)
    total, t_enc = img2img_steps(hr_steps, p.denoising_strength, fix_steps=True)
    denoiser = make_denoiser(model, spec, model_schedule(model))
    sigmas = img2img_sigmas(sigmas_for(spec, total, schedule, denoiser, run.settings, model.is_sdxl), total, t_enc)
    rng = run.rng(index, final_w, final_h)
    noise = rng.first().to(latent)
    x = latent + noise * sigmas[0]
    extra = float(opt(run.settings, "img2img_extra_noise", 0.0))
    if extra > 0:
        run.extra_fields["Extra noise"] = extra
        x = x + noise * extra
    out = run.runner(spec, rng, index, pad).sample(stage, x, sigmas)
    return _decode(run, model, out)


def run_img2img(ctx: AppContext, params: Img2ImgParams, job: Any) -> GenerationResult:
    """img2img / inpainting for `params`; returns the images, seeds and infotexts."""
    started = time.perf_counter()
    run = _Job(ctx, params, job, "img2img")
    run.resolve()
    run.prepare_prompts()
    run.prepare_seeds()
    spec, schedule = run.sampler(params.sampler_name, params.scheduler)
    multiplier = params.initial_noise_multiplier
    if multiplier is None:
        multiplier = float(opt(run.settings, "initial_noise_multiplier", 1.0))
    if multiplier != 1.0:
        run.extra_fields["Noise multiplier"] = multiplier

    def one_batch(index: slice) -> list[Image.Image]:
        model = run.base_model()
        with circular_padding([model.unet, model.vae], run.tiling):
            return _img2img_batch(run, model, index, spec, schedule, multiplier)

    images, done = _run_batches(run, one_batch)
    return run.finish(images, done, spec, schedule, started)


def _img2img_batch(run: _Job, model: Any, index: slice, spec: Any, schedule: str | None,
                   multiplier: float) -> list[Image.Image]:
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
        x = x + noise * extra
    image_cfg = p.image_cfg_scale if unet_in_channels(model) == 8 else None
    sampling = run.runner(spec, rng, index, pad, image_cfg_scale=image_cfg, mask=init.mask, nmask=init.nmask,
                          init_latent=init.init_latent)
    refiner, switch_at = run.refiner_factory(spec, p.steps, index, w, h)
    samples = sampling.sample(stage, x, sigmas, refiner, switch_at)
    if init.mask is not None and init.nmask is not None:
        samples = samples * init.nmask + init.init_latent * init.mask
    images = _decode(run, run.ctx.models.current or model, samples)
    if init.prepared_mask is None:
        return images
    region = init.prepared_mask.paste_region
    return [apply_overlay(im, init.overlays[i], region, base=init.originals[i] if region else None)
            for i, im in enumerate(images)]
