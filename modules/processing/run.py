"""The shared generation pipeline: `run_txt2img` and `run_img2img` (A1111 `process_images` / `process_images_inner`).

UI, API and scripts all call these. Per job (A1111 `modules/txt2img.py`): the selected script's `run(p)` gets the
job (`ScriptRunner.run`, scripts call `process_images(p)` back), else the pipeline runs `process(p)` itself; with
`override_settings_restore_afterwards` the checkpoint that was current before the job is loaded again afterwards.
`process(p)` reads as numbered stages (script hooks and callbacks per docs/extensions.md, through `JobHooks`):

1. `setup`; the settings snapshot (`override_settings`) and the checkpoint (`sd_model_checkpoint` override);
2. `before_process`; styles applied to the prompts; size rounded to multiples of 8 (notice);
3. seeds (`seed + i`, variation subseeds); `process` (scripts may change `p.prompt`, `p.all_prompts`, …);
   per batch `before_process_batch` / `process_batch`, prompts → scheduled/composable conds (cached per job);
4. noise (`ImageRNG`, `randn_source`, ENSD) and sampling through the registry (interrupt/skip/preview per step, the
   `cfg_*` callbacks per model call, `process_before_every_sampling`); the refiner takes over at "Switch at";
   img2img starts from the noised init latent at the right sigma (`extra_noise` callback);
5. `post_sample`, VAE decode (fp32 retry on NaN); hires fix (txt2img, `before_hr`, optional hires checkpoint, or
   only the hires pass on `firstpass_image`) as an img2img-style second pass;
6. `postprocess_batch(_list)`, face restoration, `postprocess_image`, inpainting paste-back/overlay (or the soft
   inpainting composite), `postprocess_image_after_composite`;
7. infotexts, saving (samples, grid, params.txt) and the `GenerationResult`; `postprocess(p, result)`.

An interrupt ends sampling with the last prediction (A1111 `last_latent`): that batch is decoded, postprocessed and
returned as incomplete images, saved only with `save_incomplete_images`, and no further batch starts; interrupted
before any image, the job has no result. A skip drops the current batch and continues with the next (A1111 "Skip"). Tiling applies circular padding for this job only.
"""

from __future__ import annotations

import contextvars
import copy
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from PIL import Image

from modules.processing.conditioning import opt
from modules.processing.context import AppContext, GenerationResult
from modules.processing.extra_networks import (
    activate_extension_networks,
    activate_networks,
    deactivate_extension_networks,
)
from modules.processing.hires_pass import hires_pass
from modules.processing.hooks import JobHooks, PostprocessBatchListArgs, PostprocessImageArgs, PostSampleArgs
from modules.processing.img2img_init import txt2img_image_conditioning
from modules.processing.img2img_pass import img2img_batch
from modules.processing.infotext_binding import bind_infotext
from modules.processing.intermediate_saves import save_copy
from modules.processing.job import Job
from modules.processing.params import GenerationParams, Img2ImgParams, Txt2ImgParams
from modules.processing.preview import preview_images
from modules.processing.profiling import job_profiler
from modules.processing.sampling_glue import make_denoiser, model_schedule, sigmas_for
from modules.processing.save_outputs import data_dir
from modules.processing.speedups import job_speedups
from modules.processing.tiny_vae import job_network, taesd_images
from modules.processing.vae_io import circular_padding, decode_latents
from modules.prompts.extra_network_tags import parse_prompts
from modules.runtime.job_state import Skipped
from modules.sampling import initial_noise_scale

Composite = Callable[[int, Image.Image], Image.Image]
"""(index in the batch, image) → the image with the inpainting paste-back/overlay applied."""

_pipeline: contextvars.ContextVar[Callable[[Any], GenerationResult] | None] = contextvars.ContextVar(
    "processing_pipeline", default=None)
"""`process(p)` of the job running in this thread/task, for `modules.processing.process_images` (old scripts)."""


def current_pipeline() -> Callable[[Any], GenerationResult] | None:
    """The running job's `process(p)`, or None outside a job."""
    return _pipeline.get()


def run_txt2img(ctx: AppContext, params: Txt2ImgParams, job: Any) -> GenerationResult:
    """txt2img (+ hires fix, refiner, scripts) for `params`; returns the images, seeds and infotexts."""
    return _run(ctx, params, job, "txt2img")


def run_img2img(ctx: AppContext, params: Img2ImgParams, job: Any) -> GenerationResult:
    """img2img / inpainting (+ scripts) for `params`; returns the images, seeds and infotexts."""
    return _run(ctx, params, job, "img2img")


def _run(ctx: AppContext, params: GenerationParams, job: Any, kind: str) -> GenerationResult:
    hooks = JobHooks.from_context(ctx, kind)
    hooks.script("validate", params)

    def process(p: Any) -> GenerationResult:
        return process_job(ctx, p, job, kind, hooks)

    token = _pipeline.set(process)
    try:
        with restored_overrides(ctx, params):
            result = None
            if hooks.scripts is not None:
                result = hooks.scripts.run(params, process_images=process)
            return result if result is not None else process(params)
    finally:
        _pipeline.reset(token)


@contextmanager
def restored_overrides(ctx: AppContext, params: GenerationParams) -> Iterator[None]:
    """A1111 `override_settings_restore_afterwards`: True (default) → the checkpoint current before the job is
    loaded again when the job (an override, hires checkpoint, refiner) switched it; False → the overrides stay
    as the app's settings (in memory, not saved) and the switched checkpoint stays loaded."""
    before = ctx.models.current.checkpoint if ctx.models.current is not None else None
    try:
        yield
    finally:
        if params.override_settings_restore_afterwards:
            now = ctx.models.current
            if before is not None and now is not None and now.checkpoint.filename != before.filename:
                ctx.models.load(before)
        else:
            for key, value in params.override_settings.items():
                ctx.settings.set(key, value)


def _job_copy(p: GenerationParams) -> Any:
    """A copy of `p` whose lists/dicts are copies too: scripts may change it without touching the caller's."""
    q = copy.copy(p)
    for key, value in list(vars(q).items()):
        if isinstance(value, dict | list):
            setattr(q, key, copy.copy(value))
    return q


def process_job(ctx: AppContext, params: GenerationParams, job: Any, kind: str,
                hooks: JobHooks | None = None) -> GenerationResult:
    """The pipeline's `process_images(p)`: stages 1–7 with every script hook (see module docstring)."""
    started = time.perf_counter()
    ctx.cond_cache.begin_job()
    hooks = hooks or JobHooks()
    p = _job_copy(params)
    hooks.script("setup", p)
    run = Job(ctx, p, job, kind, hooks)
    run.resolve()
    hooks.script("before_process", p)
    with run.times.measure("prompts"):
        run.prepare_prompts()
    run.prepare_seeds()
    given = _expose(run)
    hooks.script("process", p)
    _read_back(run, given)
    if kind == "txt2img":
        assert isinstance(p, Txt2ImgParams)
        one_batch, spec, schedule = _txt2img_stages(run, p)
    else:
        assert isinstance(p, Img2ImgParams)
        one_batch, spec, schedule = _img2img_stages(run, p)
    bind_infotext(run, spec, schedule)  # `modules.processing.create_infotext(p, ...)` for scripts
    try:
        with job_profiler(run.settings, data_dir(ctx)):  # profiling_enable: torch profiler around the batches
            images, done = _run_batches(run, one_batch)
    finally:
        run.close_console()  # the "Total progress" bar (multiple_tqdm)
        if getattr(p, "extra_network_data", None) is not None:  # A1111 `extra_networks.deactivate` after the loop
            deactivate_extension_networks(ctx.networks, p)
    result = run.finish(images, done, spec, schedule, started)
    hooks.script("postprocess", p, result)
    run.times.log(time.perf_counter() - started)  # --loglevel DEBUG: where the job's time went
    if not bool(opt(run.settings, "persistent_cond_cache", True)):
        ctx.cond_cache.clear()  # A1111 `StableDiffusionProcessing.close`: off → the conds do not outlive the job
    return result


def _expose(run: Job) -> tuple[str, str]:
    """Put A1111's expanded lists on `p` for scripts (`all_prompts`, `all_seeds`, …); returns the prompt pair they
    were expanded from."""
    p: Any = run.params
    p.all_prompts, p.all_negative_prompts = list(run.prompts), list(run.negative_prompts)
    p.all_seeds, p.all_subseeds = list(run.seeds), list(run.subseeds)
    p.seed, p.subseed = run.seeds[0], run.subseeds[0]
    run.extra_fields.update(getattr(p, "extra_generation_params", None) or {})
    p.extra_generation_params = run.extra_fields
    p.settings = run.settings
    return p.prompt, p.negative_prompt


def _read_back(run: Job, given: tuple[str, str]) -> None:
    """After `process(p)`: a changed `p.prompt`/`p.negative_prompt` re-expands the prompts (styles), otherwise
    the (possibly edited) `p.all_*` lists are used."""
    p: Any = run.params
    if (p.prompt, p.negative_prompt) != given:
        run.prepare_prompts()
    else:
        run.prompts, run.negative_prompts = list(p.all_prompts), list(p.all_negative_prompts)
    run.seeds, run.subseeds = list(p.all_seeds), list(p.all_subseeds)
    count = p.batch_size * p.n_iter
    for name in ("prompts", "negative_prompts", "seeds", "subseeds"):
        if len(getattr(run, name)) < count:
            raise ValueError(f"all_{name}: a script left {len(getattr(run, name))} entries for {count} images")


def _run_batches(run: Job, one_batch: Callable[[slice], tuple[list[Image.Image], Composite | None]]
                 ) -> tuple[list[Image.Image], list[int]]:
    """Batch-count loop with the per-batch hooks: `next_job` after each batch; a skip drops the batch, an interrupt
    propagates."""
    p: Any = run.params
    state = run.job.state
    state.set_job_count(p.n_iter)
    images: list[Image.Image] = []
    done: list[int] = []
    for n in range(p.n_iter):
        if state.should_stop:
            break
        index = slice(n * p.batch_size, (n + 1) * p.batch_size)
        prompts, seeds, subseeds = run.prompts[index], run.seeds[index], run.subseeds[index]
        try:
            run.hooks.script("before_process_batch", p, batch_number=n, prompts=prompts, seeds=seeds,
                             subseeds=subseeds)
            run.prompts[index] = prompts
            run.hooks.script("process_batch", p, batch_number=n, prompts=prompts, seeds=seeds, subseeds=subseeds)
            run.prompts[index] = prompts
            batch, composite = one_batch(index)
            out, indices = _postprocess_batch(run, n, index, batch, composite)
            images.extend(out)
            done.extend(indices)
            if state.interrupted:  # A1111 `save_samples()` reads `state.interrupted` when the batch is saved
                run.incomplete.update(indices)
        except Skipped:
            pass
        state.next_job()
    if not images:
        state.check()  # interrupted before any image was made: the job has no result
    return images, done


def _postprocess_batch(run: Job, n: int, index: slice, images: list[Image.Image], composite: Composite | None
                       ) -> tuple[list[Image.Image], list[int]]:
    """Stage 6 for one decoded batch (A1111 order): postprocess_batch, postprocess_batch_list, then per image face
    restoration, postprocess_image, the inpainting composite and postprocess_image_after_composite."""
    p = run.params
    run.hooks.script("postprocess_batch", p, images=images, batch_number=n)
    listed = PostprocessBatchListArgs(list(images))
    run.hooks.script("postprocess_batch_list", p, listed, batch_number=n)
    indices = list(range(index.start, index.stop))
    indices = (indices + [indices[-1]] * len(listed.images))[: len(listed.images)]
    out = []
    for k, (image, i) in enumerate(zip(listed.images, indices, strict=True)):
        image = _restore_faces(run, image, i)
        pp = PostprocessImageArgs(image, i)
        run.hooks.script("postprocess_image", p, pp)
        image = pp.image
        if composite is not None:
            image = composite(min(k, index.stop - index.start - 1), image)
            pp = PostprocessImageArgs(image, i)
            run.hooks.script("postprocess_image_after_composite", p, pp)
            image = pp.image
        out.append(image)
    return out, indices


def _restore_faces(run: Job, image: Image.Image, i: int) -> Image.Image:
    """A1111 `restore_faces` (param, else the `face_restoration` setting) with `face_restoration_model` from the
    face-restorer registry `ctx.face_restorers`; without one the image is kept and a notice says so.

    Image `i`'s infotext gets `Face restoration: <model>` only when the restorer changed its pixels (A1111 writes it
    whenever restore_faces is on; here no detector means no face is restored, and the infotext must not claim
    otherwise — the registry's notice says why nothing was restored)."""
    p = run.params
    wanted = p.restore_faces if p.restore_faces is not None else bool(opt(run.settings, "face_restoration", False))
    if not wanted:
        return image
    registry = run.ctx.face_restorers
    name = str(opt(run.settings, "face_restoration_model", "CodeFormer") or "CodeFormer")
    if registry is None:
        run.notices.append("Restore faces was skipped: no face restorer is available")
        return image
    if opt(run.settings, "save_images_before_face_restoration", False):
        # A1111 `process_images_inner`: the image as decoded, saved like a sample before the restorer runs
        save_copy(run, image, i, "-before-face-restoration")
    try:
        result = registry.restore(image, name, codeformer_weight=float(opt(run.settings, "code_former_weight", 0.5)))
    except Exception as exc:  # missing weights, unknown name: report and keep the image (A1111 prints and goes on)
        run.notices.append(f"Restore faces was skipped: {exc}")
        return image
    notices = list(getattr(result, "notices", []))
    if _same_pixels(image, result.image):
        run.notices.extend(notices or [f"Restore faces: {name} left the image unchanged"])
        return image
    run.notices.extend(notices)
    run.face_restoration[i] = name
    return result.image


def _same_pixels(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and a.convert("RGB").tobytes() == b.convert("RGB").tobytes()


def decode(run: Job, model: Any, latents: torch.Tensor) -> list[Image.Image]:
    """VAE decode with the fp32-retry notice recorded on the job; with `sd_vae_decode_method` "TAESD" the tiny
    decoder instead, and the infotext gets "VAE Decoder: TAESD" (A1111 `decode_latent_batch`). An interrupted job
    with `live_preview_fast_interrupt` on is decoded with the live-preview method (`show_progress_type`) instead,
    as A1111's `samples_to_images_tensor` does, which skips the slow VAE decode."""
    state = getattr(run.job, "state", None)
    if state is not None and state.interrupted and opt(run.settings, "live_preview_fast_interrupt", False):
        offloader = getattr(model, "offloader", None)
        return preview_images(latents, run.settings, sdxl=bool(model.is_sdxl),
                              decode=lambda x: decode_latents(model, x, run.settings)[0],
                              low_memory=bool(offloader is not None and offloader.policy.exclusive),
                              networks=run.ctx.tiny_vaes)
    taesd = job_network(run.ctx.tiny_vaes, run.settings, "sd_vae_decode_method", model, run.notices)
    if taesd is not None:
        run.extra_fields["VAE Decoder"] = "TAESD"
        return taesd_images(taesd, latents)
    images, notice = decode_latents(model, latents, run.settings, run.times)
    if notice:
        run.notices.append(notice)
    return images


def post_sample(run: Job, samples: torch.Tensor) -> torch.Tensor:
    """`post_sample(p, PostSampleArgs(samples))` before the final decode; scripts may replace the samples."""
    ps = PostSampleArgs(samples)
    run.hooks.script("post_sample", run.params, ps)
    return ps.samples


def _after_networks(run: Job, index: slice) -> None:
    """The batch's extra-network tags (A1111 `p.parse_extra_network_prompts()`: those of its first prompt, as
    `p.extra_network_data`), the networks extensions registered activated for them (A1111
    `extra_networks.activate`), then `after_extra_networks_activate(p, batch_number=, prompts=, seeds=,
    subseeds=, extra_network_data=)`."""
    p: Any = run.params
    if not p.disable_extra_networks:
        run.extra_network_data = dict(parse_prompts(run.prompts[index])[1])
        p.extra_network_data = run.extra_network_data
        activate_extension_networks(run.ctx.networks, p, run.extra_network_data)
    run.hooks.script("after_extra_networks_activate", p, batch_number=index.start // p.batch_size,
                     prompts=run.prompts[index], seeds=run.seeds[index], subseeds=run.subseeds[index],
                     extra_network_data=run.extra_network_data)


def _txt2img_stages(run: Job, p: Txt2ImgParams) -> tuple[Callable[[slice], Any], Any, str | None]:
    spec, schedule = run.sampler(p.sampler_name, p.scheduler)
    hr = None
    if p.enable_hr or p.firstpass_image is not None:
        hr_spec, hr_schedule = spec, schedule
        if p.hr_sampler_name and p.hr_sampler_name != "Use same sampler":
            hr_spec, hr_schedule = run.sampler(p.hr_sampler_name, None)
        if p.hr_scheduler and p.hr_scheduler != "Use same scheduler":
            hr_schedule = p.hr_scheduler
        hr = (hr_spec, hr_schedule)

    def one_batch(index: slice) -> tuple[list[Image.Image], None]:
        model = run.base_model()
        # extra networks: activate the batch's networks here (the model is resolved, prompts are not encoded yet)
        # and restore them after the `with` block (sampling and hires are done inside it).
        with activate_networks(run), circular_padding([model.unet, model.vae], run.tiling), job_speedups(run, model):
            _after_networks(run, index)
            return _txt2img_batch(run, model, index, spec, schedule, hr), None

    return one_batch, spec, schedule


def _txt2img_batch(run: Job, model: Any, index: slice, spec: Any, schedule: str | None,
                   hr: tuple[Any, str | None] | None) -> list[Image.Image]:
    p = run.params
    assert isinstance(p, Txt2ImgParams)
    if p.firstpass_image is not None:  # the ✨ button: only the hires pass on an existing image
        run.hooks.script("before_hr", p)
        assert hr is not None
        return hires_pass(run, model, None, index, hr[0], hr[1], decode=decode, post_sample=post_sample)
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
    run.before_sampling(x, noise, stage)
    samples = run.runner(spec, rng, index, pad).sample(stage, x, sigmas, refiner, switch_at)
    model = run.ctx.models.current or model
    if hr is None:
        return decode(run, model, post_sample(run, samples))
    run.hooks.script("before_hr", p)
    return hires_pass(run, run.base_model(), samples, index, hr[0], hr[1], decode=decode, post_sample=post_sample)


def _img2img_stages(run: Job, p: Img2ImgParams) -> tuple[Callable[[slice], Any], Any, str | None]:
    spec, schedule = run.sampler(p.sampler_name, p.scheduler)
    multiplier = p.initial_noise_multiplier
    if multiplier is None:
        multiplier = float(opt(run.settings, "initial_noise_multiplier", 1.0))
    if multiplier != 1.0:
        run.extra_fields["Noise multiplier"] = multiplier

    def one_batch(index: slice) -> tuple[list[Image.Image], Composite | None]:
        model = run.base_model()
        # extra networks: activate the batch's networks here (the model is resolved, prompts are not encoded yet)
        # and restore them after the `with` block (sampling is done inside it).
        with activate_networks(run), circular_padding([model.unet, model.vae], run.tiling), job_speedups(run, model):
            _after_networks(run, index)
            return img2img_batch(run, model, index, spec, schedule, multiplier, decode=decode,
                                 post_sample=post_sample)

    return one_batch, spec, schedule
