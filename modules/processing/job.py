"""State of one running generation job (A1111's `StableDiffusionProcessing` fields set during
`process_images_inner`, plus what becomes `Processed`): settings snapshot, model, prompts, seeds, conds cache,
infotexts and the final `GenerationResult`.

The stage functions in `modules.processing.run` drive it; this module holds no orchestration.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from modules.images import FilenameJob, build_infotext
from modules.memory.devices import peak_process_memory_bytes
from modules.processing.conditioning import PromptEncoder, build_conds, empty_chunk_cond, opt
from modules.processing.console_progress import TotalProgress, console_bars_enabled, total_progress_for
from modules.processing.context import AppContext, GenerationResult
from modules.processing.hooks import JobHooks
from modules.processing.img2img_init import txt2img_image_conditioning, unet_in_channels
from modules.processing.infotext_fields import VERSION, ImageContext, generation_fields
from modules.processing.job_timing import JobTimes
from modules.processing.params import GenerationParams, Img2ImgParams, rounded_size
from modules.processing.rng import ImageRNG
from modules.processing.sampling_glue import Pass, SamplingRun
from modules.processing.save_outputs import SaveRequest, make_grid, save_outputs, wants_grid
from modules.processing.seeds import image_seeds, resolve_seed
from modules.processing.speedups import pass_speedups
from modules.processing.vae_io import latent_factor
from modules.prompts import strip_comments
from modules.sampling import display_schedule, resolve_sampler

MODEL_HASH_WAIT_SECONDS = 5.0
"""How long the first infotext of a job waits for the background sha256 of the checkpoint (A1111 hashes before
the first step, so its first infotext always has `Model hash`; here hashing runs beside the job instead)."""


@dataclass
class Job:
    """State of one running job (A1111's `p` plus `Processed`)."""

    ctx: AppContext
    params: GenerationParams
    job: Any
    kind: str
    hooks: JobHooks = field(default_factory=JobHooks)
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
    extra_network_data: dict[str, Any] = field(default_factory=dict)
    face_restoration: dict[int, str] = field(default_factory=dict)
    """Image index → the face restorer that changed that image (its infotext `Face restoration`)."""
    returned_extras: dict[int, list[Image.Image]] = field(default_factory=dict)
    """Image index → images returned right after it but not saved as samples (`return_mask`,
    `return_mask_composite`)."""
    incomplete: set[int] = field(default_factory=set)
    """Indices of the images of a batch an interrupt cut short: returned, saved only with `save_incomplete_images`
    (A1111 `p.save_samples()`)."""
    checked_hash: tuple[str | None] | None = None
    total_progress: TotalProgress | None = None
    """The console's "Total progress" bar of the job (`multiple_tqdm`); closed by `close_console`."""
    checked_vae_hash: tuple[str | None] | None = None
    times: JobTimes = field(default_factory=JobTimes)
    """Wall time per stage, networks apart from the work around them (`modules.processing.job_timing`)."""

    # -- stage 1: settings and checkpoint -------------------------------------------------------------------------
    def resolve(self) -> None:
        """Settings snapshot with the job's overrides; the override checkpoint, else the current, else the
        `sd_model_checkpoint` setting."""
        self.settings = self.ctx.settings.snapshot(self.params.override_settings)
        wanted = self.params.override_settings.get("sd_model_checkpoint")
        manager = self.ctx.models
        current = manager.current
        if wanted is not None:
            self.model = manager.load(wanted, options=self.settings)
        elif current is not None:
            self.model = manager.load(current.checkpoint, options=self.settings)
        else:
            self.model = manager.load(opt(self.settings, "sd_model_checkpoint", None), options=self.settings)

    def base_model(self) -> Any:
        """The job's model, loaded again if a refiner or hires-checkpoint pass swapped it out."""
        if self.ctx.models.current is not self.model:
            self.model = self.ctx.models.load(self.model.checkpoint, options=self.settings)
        return self.model

    # -- stage 2: styles, comments, size -----------------------------------------------------------------------------
    def prepare_prompts(self) -> None:
        """Styles applied to the prompts (one per image, A1111 `setup_prompts`), then `# comments` removed; size
        rounded to multiples of 8."""
        p = self.params
        prompt, negative = p.prompt, p.negative_prompt
        if self.ctx.styles is not None and p.styles:
            prompt = self.ctx.styles.apply_styles_to_prompt(prompt, p.styles)
            negative = self.ctx.styles.apply_negative_styles_to_prompt(negative, p.styles)
        prompt, negative = self.without_comments(prompt), self.without_comments(negative)
        count = p.batch_size * p.n_iter
        self.prompts, self.negative_prompts = [prompt] * count, [negative] * count
        self.width, self.height, notice = rounded_size(p.width, p.height)
        if notice:
            self.notices.append(notice)

    def without_comments(self, text: str) -> str:
        """`text` with `# comments` removed when the `enable_prompt_comments` setting is on (default), else as is.

        A1111 1.8+ (`processing_scripts/comments.py`): an always-on script's `process(p)` strips `p.all_prompts`,
        `p.all_negative_prompts` and the main prompts after styles are applied, so the comment is neither encoded
        nor written to the infotext."""
        if bool(opt(self.settings, "enable_prompt_comments", True)):
            return strip_comments(text)
        return text

    # -- stage 3: seeds and conds ----------------------------------------------------------------------------------
    def prepare_seeds(self) -> None:
        """`seed + i` per image (variation subseeds), A1111 `get_fixed_seed` + `all_seeds`."""
        p = self.params
        seed = resolve_seed(p.seed)
        subseed = resolve_seed(p.subseed)
        self.seeds, self.subseeds = image_seeds(seed, subseed, p.subseed_strength, p.batch_size * p.n_iter)

    def encoder(self, model: Any, width: int, height: int) -> PromptEncoder:
        key = (id(model), width, height)
        if key not in self.encoders:
            self.encoders[key] = PromptEncoder(model, self.settings, width, height, times=self.times,
                                               persistent=self.ctx.cond_cache)
        return self.encoders[key]

    def conds(self, model: Any, spec: Any, steps: int, index: slice, width: int, height: int,
              prompts: list[str] | None = None, negatives: list[str] | None = None,
              hires_steps: int | None = None, switch_networks: bool = True) -> tuple[Pass, torch.Tensor | None]:
        """(conds of the pass, the empty-prompt chunk for padding); `switch_networks=False` encodes with the
        extra networks active now instead of those of `prompts` (see `build_conds`). The empty chunk is only
        encoded when `pad_cond_uncond` will use it (A1111 encodes it once per model load; here it would be one
        more text-encoder call per job), else None."""
        with self.times.measure("conditioning"):
            encoder = self.encoder(model, width, height)
            multiplier = 2 if spec.second_order else 1
            cond, uncond = build_conds(encoder, (prompts or self.prompts)[index],
                                       (negatives or self.negative_prompts)[index], steps * multiplier,
                                       None if hires_steps is None else hires_steps * multiplier,
                                       switch_networks=switch_networks)
            pad = empty_chunk_cond(encoder) if opt(self.settings, "pad_cond_uncond", False) else None
            return Pass(model, cond, uncond), pad

    # -- stage 4: sampling -----------------------------------------------------------------------------------------
    def rng(self, index: slice, width: int, height: int, model: Any = None) -> ImageRNG:
        p = self.params
        model = model or self.model
        f = latent_factor(model)
        return ImageRNG((4, height // f, width // f), self.seeds[index], self.subseeds[index], p.subseed_strength,
                        p.seed_resize_from_h, p.seed_resize_from_w,
                        source=str(opt(self.settings, "randn_source", "GPU")), device=model.device,
                        eta_noise_seed_delta=int(opt(self.settings, "eta_noise_seed_delta", 0)), downscale=f)

    def runner(self, spec: Any, rng: ImageRNG, index: slice, pad_with: torch.Tensor | None, *,
               second_pass: bool = False, **kwargs: Any) -> SamplingRun:
        """A sampling call with the console bars (`--disable-console-progressbars`, `multiple_tqdm`) and the pass's
        token merging / Hypertile (`second_pass`: the hires pass's ratio and switch)."""
        if self.total_progress is None:
            self.total_progress = total_progress_for(self.settings, self.ctx.flags)
        tome, tile = pass_speedups(self.params, self.settings, self.kind, self.seeds[0] if self.seeds else 0,
                                   second_pass=second_pass)
        return SamplingRun(spec, self.params, self.settings, self.job, rng, self.seeds[index],
                           self.params.cfg_scale, pad_with=pad_with, hooks=self.hooks.cfg_hooks(),
                           console_bars=console_bars_enabled(self.ctx.flags), total_bar=self.total_progress,
                           token_merging=tome, hypertile=tile, tiny_vaes=self.ctx.tiny_vaes, times=self.times,
                           **kwargs)

    def before_sampling(self, x: torch.Tensor, noise: torch.Tensor, stage: Pass) -> None:
        """`process_before_every_sampling(p, x=, noise=, c=, uc=)` (A1111 1.10), before each sampling call."""
        self.hooks.script("process_before_every_sampling", self.params, x=x, noise=noise, c=stage.cond,
                          uc=stage.uncond)

    def refiner_factory(self, spec: Any, steps: int, index: slice, width: int, height: int, *,
                        second_pass: bool = False, prompts: list[str] | None = None,
                        negatives: list[str] | None = None, hires_steps: int | None = None
                        ) -> tuple[Callable[[], Pass] | None, float]:
        """(loader of the refiner pass, switch point), or (None, 1.0) when this pass has no refiner.

        With hires fix, `hires_fix_refiner_pass` picks the passes the refiner takes part in (A1111 `apply_refiner`):
        "second pass" (default) only the hires pass (`second_pass=True`, with the hires `prompts`/`negatives` and
        `hires_steps`), "first pass" only the first, "both passes" both; any other choice than "second pass" is
        written to the infotext as "Hires refiner" when the refiner takes over."""
        p = self.params
        if not p.refiner_checkpoint or p.refiner_checkpoint == "None" or (p.refiner_switch_at or 1.0) >= 1.0:
            return None, 1.0
        hires = bool(getattr(p, "enable_hr", False)) or getattr(p, "firstpass_image", None) is not None
        passes = str(opt(self.settings, "hires_fix_refiner_pass", "second pass")) if hires else "first pass"
        if passes == ("first pass" if second_pass else "second pass"):
            return None, 1.0

        def load() -> Pass:
            refiner = self.ctx.models.load(p.refiner_checkpoint, options=self.settings)
            self.extra_fields["Refiner"] = refiner.checkpoint.short_title
            if hires and passes != "second pass":
                self.extra_fields["Hires refiner"] = passes
            stage, _ = self.conds(refiner, spec, steps, index, width, height, prompts, negatives, hires_steps)
            stage.image_cond = txt2img_image_conditioning(refiner, index.stop - index.start, width, height)
            return stage

        return load, float(p.refiner_switch_at or 1.0)

    def sampler(self, name: str | None, scheduler: str | None) -> tuple[Any, str | None]:
        spec, suffix_schedule = resolve_sampler(name)
        return spec, scheduler or suffix_schedule

    # -- stage 7: infotext, save, result --------------------------------------------------------------------------
    def model_hash(self) -> str | None:
        """`Model hash` for the infotext: waits up to `MODEL_HASH_WAIT_SECONDS` once for the background hash."""
        if self.checked_hash is None:
            self.checked_hash = (self.ctx.models.shorthash(self.model.checkpoint, timeout=MODEL_HASH_WAIT_SECONDS),)
        return self.checked_hash[0]

    def vae_hash(self) -> str | None:
        """`VAE hash` for the infotext (A1111 `get_loaded_vae_hash`: first 10 hex digits of the external VAE file's
        sha256, cached like checkpoint hashes); None for the checkpoint's own VAE or with --no-hashing."""
        if self.checked_vae_hash is None:
            path = getattr(getattr(self.model, "vae_resolution", None), "path", None)
            value = None
            if path is not None:
                try:
                    future = self.ctx.models.hasher.submit(path, f"vae/{path.name}")
                    value = future.result(timeout=MODEL_HASH_WAIT_SECONDS)
                except Exception:  # a hash is optional in the infotext (timeout, unreadable file)
                    value = None
            self.checked_vae_hash = (value[:10] if value else None,)
        return self.checked_vae_hash[0]

    def infotext(self, i: int, spec: Any, schedule: str | None) -> str:
        """One image's infotext; `add_model_name_to_info`, `add_model_hash_to_info`, `add_vae_name_to_info`,
        `add_vae_hash_to_info` and `add_version_to_infotext` leave their field out when off (A1111
        `create_infotext`)."""
        p, s = self.params, self.settings
        info = self.model.checkpoint
        image_cfg = p.image_cfg_scale if isinstance(p, Img2ImgParams) and unet_in_channels(self.model) == 8 else None
        image_ctx = ImageContext(
            seed=self.seeds[i], subseed=self.subseeds[i], sampler=spec.name,
            schedule_label=display_schedule(spec, schedule),
            model_name=info.model_name if opt(s, "add_model_name_to_info", True) else None,
            model_hash=self.model_hash() if opt(s, "add_model_hash_to_info", True) else None,
            vae_name=self.model.vae_name if opt(s, "add_vae_name_to_info", True) else None,
            vae_hash=self.vae_hash() if opt(s, "add_vae_hash_to_info", True) else None,
            version=VERSION if opt(s, "add_version_to_infotext", True) else None,
            clip_skip=int(opt(s, "CLIP_stop_at_last_layers", 1)),
            eta_noise_seed_delta=int(opt(s, "eta_noise_seed_delta", 0)), sampler_uses_ensd=spec.uses_ensd,
            randn_source=str(opt(s, "randn_source", "GPU")), tiling=self.tiling,
            face_restoration=self.face_restoration.get(i),
            conditional_mask_weight=(float(opt(s, "inpainting_mask_weight", 1.0))
                                     if unet_in_channels(self.model) == 9 else None),
            image_cfg_scale=image_cfg, extra=dict(self.extra_fields))
        fields = generation_fields(p, image_ctx, width=self.width, height=self.height, hires_info=self.hires_info)
        user = getattr(self.job, "user", None)  # the authenticated login that submitted the job (A1111 `p.user`)
        if user and opt(s, "add_user_name_to_info", False):
            fields["User"] = user
        return build_infotext(self.prompts[i], self.negative_prompts[i], fields)

    def unsaved_positions(self, done: list[int]) -> frozenset[int]:
        """Positions in the job's images that are not written: the incomplete ones, unless `save_incomplete_images`
        (A1111 `save_samples()`: `opts.save_incomplete_images or not state.interrupted and not state.skipped`)."""
        if bool(opt(self.settings, "save_incomplete_images", False)):
            return frozenset()
        return frozenset(k for k, i in enumerate(done) if i in self.incomplete)

    def close_console(self) -> None:
        """Close the job's "Total progress" bar (end of the job, also after an error or interrupt)."""
        if self.total_progress is not None:
            self.total_progress.close()

    @property
    def tiling(self) -> bool:
        return bool(self.params.tiling if self.params.tiling is not None else opt(self.settings, "tiling", False))

    def finish(self, images: list[Image.Image], done: list[int], spec: Any, schedule: str | None,
               started: float) -> GenerationResult:
        """Infotexts, grid (`image_grid` callback), saving (`before_image_saved`/`image_saved`) and the result."""
        p = self.params
        self.job.state.set_textinfo("Saving")
        with self.times.measure("infotext"):
            infotexts = [self.infotext(i, spec, schedule) for i in done]
        seeds = [self.seeds[i] for i in done]
        prompts = [self.prompts[i] for i in done]
        negatives = [self.negative_prompts[i] for i in done]
        grid = (make_grid(images, p.batch_size, dict(self.settings), hooks=self.hooks)
                if wants_grid(len(images), self.settings) else None)
        info = self.model.checkpoint
        filename_job = FilenameJob(
            prompt=self.prompts[0], negative_prompt=self.negative_prompts[0], styles=tuple(p.styles),
            steps=p.steps, cfg_scale=p.cfg_scale, sampler_name=spec.name, scheduler=schedule,
            model_name=info.model_name, model_hash=self.model_hash(), batch_size=p.batch_size,
            n_iter=p.n_iter, all_seeds=tuple(self.seeds), job_timestamp=self.job.state.job_timestamp)
        request = SaveRequest(self.kind, images, infotexts, seeds, prompts, negatives, p.batch_size, p.n_iter,
                              p.do_not_save_samples, p.do_not_save_grid, filename_job, params=p,
                              unsaved=self.unsaved_positions(done))
        with self.times.measure("saving"):
            saved = (save_outputs(self.ctx, self.settings, request, grid, hooks=self.hooks, notices=self.notices)
                     if images else [])
        out_images, out_infos, first = with_returned_extras(images, infotexts, done, self.returned_extras)
        if grid is not None and opt(self.settings, "return_grid", True):
            out_images, out_infos, first = [grid, *out_images], [infotexts[0], *out_infos], 1
        return GenerationResult(
            images=out_images, infotexts=out_infos, all_prompts=prompts, all_negative_prompts=negatives,
            all_seeds=seeds, all_subseeds=[self.subseeds[i] for i in done], index_of_first_image=first,
            width=self.width, height=self.height, sampler_name=spec.name, cfg_scale=p.cfg_scale, steps=p.steps,
            seed=self.seeds[0], subseed=self.subseeds[0], subseed_strength=p.subseed_strength,
            sd_model_name=info.model_name, sd_model_hash=self.model_hash() or "",
            clip_skip=int(opt(self.settings, "CLIP_stop_at_last_layers", 1)),
            job_timestamp=self.job.state.job_timestamp,
            notices=list(dict.fromkeys([*self.notices, *self.hooks.notices])),
            saved_paths=saved, time_taken=time.perf_counter() - started, peak_memory_bytes=peak_memory(self.model))


def with_returned_extras(images: list[Image.Image], infotexts: list[str], done: list[int],
                         extras: dict[int, list[Image.Image]]) -> tuple[list[Image.Image], list[str], int]:
    """The result's images with each image's extra returned images right after it (A1111 appends the mask and the
    mask composite to `output_images` after the image); each extra carries its image's infotext so `infotexts`
    stays one per image (A1111 leaves it shorter). Returns (images, infotexts, index of the first image)."""
    out_images: list[Image.Image] = []
    out_infos: list[str] = []
    pending = dict(extras)
    for position, (image, info) in enumerate(zip(images, infotexts, strict=True)):
        added = pending.pop(done[position], []) if position < len(done) else []
        out_images.extend([image, *added])
        out_infos.extend([info] * (1 + len(added)))
    return out_images, out_infos, 0


def peak_memory(model: Any) -> int:
    """Peak device memory of the job on CUDA, else the process's peak resident set size (bytes)."""
    device = getattr(model, "device", torch.device("cpu"))
    if torch.device(device).type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return peak_process_memory_bytes()
