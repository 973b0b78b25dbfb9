"""The loaded model as a sampler model, sigmas, sampler options, noise samplers and the per-step callback.

A1111 behaviour kept (`sd_samplers_kdiffusion`, `sd_samplers_common`):
* sigmas from the sampler registry (`sampler_sigmas`), the UNet wrapped as an eps/v `DiscreteDenoiser`
  (LCM: `LCMDenoiser`) inside the `CFGDenoiser`;
* txt2img starts from `noise · initial_noise_scale`; img2img runs the tail of the schedule (see `img2img_sigmas`);
* ancestral samplers draw their noise from the per-image generators (`ImageRNG.next`, re-seeded by ENSD), SDE
  samplers from per-image Brownian trees seeded with the image seeds;
* the callback records progress, raises on interrupt/skip (`JobState.sampler_callback`) and stores a live
  preview every `show_progress_every_n_steps` steps (`modules.processing.preview`);
* the refiner takes over once `1 - t/999` exceeds "Switch at" (fraction of model timesteps, A1111 1.9+), or with
  `refiner_switch_by_sample_steps` once that fraction of the steps is done: the rest of the sigmas run with the
  refiner model and its own conds;
* an interrupt (not a skip) ends sampling early with the last x0 prediction of the prompt (A1111 `last_latent`),
  which the job decodes as an incomplete image (`save_incomplete_images`).
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from modules.memory.precision import check_for_nans
from modules.models.fp8_storage import compute_dtype
from modules.models.speedups import HypertileConfig, TokenMergeConfig, unet_speedups
from modules.processing.conditioning import opt
from modules.processing.console_progress import TotalProgress
from modules.processing.job_timing import JobTimes
from modules.processing.preview import live_preview, preview_latents
from modules.processing.rng import ImageRNG
from modules.processing.tiny_vae import TinyVaes
from modules.processing.vae_io import decode_latents
from modules.runtime.job_state import Interrupted, Skipped
from modules.sampling import (
    BrownianTreeNoiseSampler,
    CFGDenoiser,
    CFGPolicy,
    CondSchedule,
    DiscreteDenoiser,
    DiscreteSchedule,
    LCMDenoiser,
    MultiCond,
    SamplerSpec,
    final_latent_scale,
    rescale_zero_terminal_snr,
    sampler_sigmas,
    scaled_linear_alphas_cumprod,
)
from modules.sampling.cfg_denoiser import CFGHooks, MaskBlend

Tensor = torch.Tensor


def model_schedule(model: Any) -> DiscreteSchedule:
    """The model's discrete noise schedule from its architecture preset (`schedule` block), with zero terminal SNR
    when the checkpoint asks for it."""
    preset = model.architecture.preset.get("schedule", {}) if model.architecture.preset else {}
    alphas = scaled_linear_alphas_cumprod(float(preset.get("linear_start", 0.00085)),
                                          float(preset.get("linear_end", 0.012)),
                                          int(preset.get("num_timesteps", 1000)))
    if getattr(model.architecture, "zero_terminal_snr", False):
        alphas = rescale_zero_terminal_snr(alphas)
    return DiscreteSchedule(alphas)


def unet_apply(model: Any, times: JobTimes | None = None) -> Callable[[Tensor, Tensor, dict[str, Tensor]], Tensor]:
    """`apply_model(x, t, cond)` for the UNet: `concat` joins the channels (inpainting 9-ch, pix2pix 8-ch),
    `crossattn` is the context and `vector` SDXL's `y`. Runs in the UNet's dtype, under `torch.autocast` when the
    precision policy says so (`--precision autocast`, A1111's default for half precision; `full`/`half` run without
    it), and returns float32, so the sampler's maths stays in fp32 (A1111 `--upcast-sampling` casts the UNet's
    input to its dtype and its output back the same way). `times` books each call as "UNet"."""
    unet = model.unet
    dtype = compute_dtype(unet)  # not the stored dtype: FP8-stored layers compute in the policy dtype
    precision = model.dtypes

    def apply(x: Tensor, t: Tensor, cond: dict[str, Tensor]) -> Tensor:
        if "concat" in cond:
            x = torch.cat([x, cond["concat"].to(x)], dim=1)
        y = cond.get("vector")
        start = time.perf_counter()
        with torch.no_grad(), precision.autocast_context():
            out = unet(x.to(dtype), t, context=cond["crossattn"].to(dtype), y=None if y is None else y.to(dtype))
        out = out.float()
        if times is not None:
            times.add("UNet", time.perf_counter() - start)
        return out

    return apply


def schedule_with_settings(schedule: DiscreteSchedule, settings: Mapping[str, Any]) -> DiscreteSchedule:
    """A1111 `apply_alpha_schedule_override`: `use_downcasted_alpha_bar` rounds alphas_cumprod to fp16 (the
    pre-1.8 behaviour under half precision, infotext "Downcast alphas_cumprod"), then `sd_noise_schedule`
    "Zero Terminal SNR" rescales it (infotext "Noise Schedule"). Unchanged schedule when both are off."""
    alphas = schedule.alphas_cumprod
    if opt(settings, "use_downcasted_alpha_bar", False):
        alphas = alphas.half().to(schedule.alphas_cumprod.dtype)
    if opt(settings, "sd_noise_schedule", "Default") == "Zero Terminal SNR":
        alphas = rescale_zero_terminal_snr(alphas)
    if alphas is schedule.alphas_cumprod:
        return schedule
    return DiscreteSchedule(alphas, quantize=schedule.quantize)


def schedule_infotext(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Infotext fields of the schedule settings A1111 writes ("Downcast alphas_cumprod", "Noise Schedule")."""
    out: dict[str, Any] = {}
    if opt(settings, "use_downcasted_alpha_bar", False):
        out["Downcast alphas_cumprod"] = True
    if opt(settings, "sd_noise_schedule", "Default") == "Zero Terminal SNR":
        out["Noise Schedule"] = "Zero Terminal SNR"
    return out


def make_denoiser(model: Any, spec: SamplerSpec, schedule: DiscreteSchedule, times: JobTimes | None = None
                  ) -> DiscreteDenoiser:
    """eps/v `DiscreteDenoiser` (or `LCMDenoiser` for the LCM sampler) over the model's UNet (`times`: see
    `unet_apply`)."""
    if spec.denoiser == "lcm":
        return LCMDenoiser(unet_apply(model, times), schedule.alphas_cumprod)
    return DiscreteDenoiser(unet_apply(model, times), schedule, model.prediction_type)


def sigmas_for(spec: SamplerSpec, steps: int, scheduler: str | None, denoiser: DiscreteDenoiser,
               settings: Mapping[str, Any], is_sdxl: bool) -> Tensor:
    """The full sigma schedule for `steps` with A1111's per-sampler rules and schedule settings: `sigma_min`,
    `sigma_max`, `rho`, the Beta schedule's `beta_dist_alpha`/`beta_dist_beta`, `use_old_karras_scheduler_sigmas`
    (0.1…10 instead of the model's range), the alphas_cumprod overrides of `schedule_with_settings`."""
    overrides: dict[str, Any] = {"is_sdxl": is_sdxl}
    for key, name in (("sigma_min", "sigma_min"), ("sigma_max", "sigma_max"), ("rho", "rho")):
        value = opt(settings, name, 0.0)
        if value:
            overrides[key] = float(value)
    overrides["beta_alpha"] = float(opt(settings, "beta_dist_alpha", 0.6))
    overrides["beta_beta"] = float(opt(settings, "beta_dist_beta", 0.6))
    overrides["use_old_karras_sigmas"] = bool(opt(settings, "use_old_karras_scheduler_sigmas", False))
    automatic = denoiser.get_sigmas if spec.denoiser == "lcm" else None
    schedule = denoiser.schedule if spec.denoiser == "lcm" else schedule_with_settings(denoiser.schedule, settings)
    return sampler_sigmas(spec, steps, scheduler, schedule,
                          always_discard_next_to_last_sigma=bool(opt(settings, "always_discard_next_to_last_sigma",
                                                                     False)),
                          automatic=automatic, uni_pc_skip_type=str(opt(settings, "uni_pc_skip_type", "time_uniform")),
                          **overrides)


def img2img_steps(steps: int, denoising_strength: float, fix_steps: bool) -> tuple[int, int]:
    """(schedule length, t_enc) of an img2img pass (A1111 `setup_img2img_steps`): with `img2img_fix_steps` (and
    for hires fix) exactly `steps` are run on a schedule of `int(steps / min(denoising, 0.999))`; otherwise the
    schedule has `steps` entries and `int(min(denoising, 0.999) · steps)` of them are run."""
    strength = min(denoising_strength, 0.999)
    if fix_steps:
        return (int(steps / strength) if denoising_strength > 0 else 0), steps - 1
    return steps, int(strength * steps)


def img2img_sigmas(sigmas: Tensor, steps: int, t_enc: int) -> Tensor:
    """The tail of the schedule img2img runs on: `sigmas[steps - t_enc - 1:]` (A1111 `sample_img2img`)."""
    return sigmas[steps - t_enc - 1:]


def sampler_options(spec: SamplerSpec, params: Any, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword options of a sampler: eta from the params or `eta_ancestral`/`eta_ddim`, churn values from the
    params or the `s_*` settings (`s_tmax` 0 means infinity, as A1111); UniPC's order, variant and lower order
    final step from `uni_pc_order`, `uni_pc_variant`, `uni_pc_lower_order_final`."""
    options = dict(spec.options)
    if spec.timestep_schedule == "unipc":
        options["order"] = int(opt(settings, "uni_pc_order", options.get("order", 3)))
        options["variant"] = str(opt(settings, "uni_pc_variant", options.get("variant", "bh1")))
        options["lower_order_final"] = bool(opt(settings, "uni_pc_lower_order_final",
                                                options.get("lower_order_final", True)))
    if spec.eta_setting:
        eta = params.eta if params.eta is not None else opt(settings, spec.eta_setting, options.get("eta", 1.0))
        options["eta"] = float(eta)
    for key in ("s_churn", "s_tmin", "s_tmax", "s_noise"):
        if key in options:
            value = getattr(params, key, None)
            value = opt(settings, key, options[key]) if value is None else value
            options[key] = float("inf") if key == "s_tmax" and not value else float(value)
    return options


def _accepts(function: Callable[..., Any], name: str) -> bool:
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def noise_sampler_for(spec: SamplerSpec, x: Tensor, sigmas: Tensor, rng: ImageRNG, seeds: list[int], *,
                      per_image_trees: bool = True) -> Any:
    """Seeded extra noise: Brownian trees per image seed for SDE samplers, else `ImageRNG.next()` draws.

    `per_image_trees=False` is A1111's `no_dpmpp_sde_batch_determinism`: no noise sampler of its own, so the
    sampler's default one tree for the whole batch seeded from the global torch RNG (an image then depends on
    its batch)."""
    if spec.brownian_noise:
        positive = sigmas[sigmas > 0]
        return BrownianTreeNoiseSampler(x, positive.min(), sigmas.max(), seed=seeds if per_image_trees else None)
    return lambda sigma, sigma_next: rng.next().to(x)


@dataclass
class Pass:
    """One sampling pass: the model, its conds and the sigmas to run."""

    model: Any
    cond: MultiCond
    uncond: list[CondSchedule]
    image_cond: Tensor | None = None


@dataclass
class SamplingRun:
    """Everything a sampling call needs besides the starting latent."""

    spec: SamplerSpec
    params: Any
    settings: Mapping[str, Any]
    job: Any
    rng: ImageRNG
    seeds: list[int]
    cfg_scale: float
    image_cfg_scale: float | None = None
    pad_with: Tensor | None = None
    mask: Tensor | None = None
    nmask: Tensor | None = None
    init_latent: Tensor | None = None
    step_offset: int = 0
    hooks: CFGHooks | None = None
    blend: MaskBlend | None = None
    """With a mask: replaces the hard blend after guidance (soft inpainting, the scripts' `on_mask_blend`)."""
    console_bars: bool = False
    """The sampler's step bar in the console (off with `--disable-console-progressbars`)."""
    total_bar: TotalProgress | None = None
    """The job's "Total progress" bar (`multiple_tqdm`), stepped with every sampling step."""
    token_merging: TokenMergeConfig | None = None
    """ToMe on the UNet's self-attention while sampling (`modules.processing.speedups.pass_speedups`)."""
    hypertile: HypertileConfig | None = None
    """Hypertile on the UNet's self-attention while sampling."""
    tiny_vaes: TinyVaes | None = None
    """The Approx NN / TAESD networks of the "Approx NN" and "TAESD" live previews (`show_progress_type`)."""
    interrupted: bool = False
    """An interrupt stopped the sampling: `sample` returned the last prediction (A1111 `last_latent`)."""
    times: JobTimes | None = None
    """The job's stage timings: "sampling" (the whole call), "UNet", "progress", "previews"."""

    def callback(self, sdxl: bool, cfg: CFGDenoiser | None = None, model: Any = None
                 ) -> Callable[[dict[str, Any]], None]:
        """Per-step progress, interrupt checks and a live preview every `show_progress_every_n_steps` steps
        (`modules.processing.preview`: content, method and grid from the live-preview settings)."""
        state = self.job.state
        every = int(opt(self.settings, "show_progress_every_n_steps", 10))
        previews = bool(opt(self.settings, "live_previews_enable", True))

        def decode(latents: Tensor) -> list[Any]:
            return decode_latents(model, latents, self.settings)[0]

        times = self.times if self.times is not None else JobTimes()

        def on_step(info: dict[str, Any]) -> None:
            with times.measure("progress"):
                state.sampler_callback({"i": info["i"] + self.step_offset, "denoised": info["denoised"]})
                if self.total_bar is not None:
                    left_in_pass = max(0, state.sampling_steps - state.sampling_step)
                    later_batches = max(0, state.job_count - state.job_no - 1) * state.sampling_steps
                    self.total_bar.step(left_in_pass + later_batches)
                due = previews and every > 0 and state.preview_due(every)
            if due:
                preview_started = time.perf_counter()
                latents = preview_latents(self.settings, info["denoised"],
                                          None if cfg is None else cfg.last_cond_denoised,
                                          None if cfg is None else cfg.last_uncond_denoised)
                offloader = getattr(model, "offloader", None)
                state.set_preview(live_preview(latents, self.settings, sdxl=sdxl,
                                               decode=decode if model is not None else None,
                                               low_memory=bool(offloader is not None and offloader.policy.exclusive),
                                               networks=self.tiny_vaes))
                times.add("previews", time.perf_counter() - preview_started)

        return on_step

    def _segment(self, stage: Pass, x: Tensor, sigmas: Tensor, total_steps: int) -> Tensor:
        schedule = schedule_with_settings(model_schedule(stage.model), self.settings)
        # A1111 builds its k-diffusion denoisers with `quantize=opts.enable_quantization` (timestep samplers don't)
        schedule.quantize = bool(opt(self.settings, "enable_quantization", False)) and not self.spec.timestep_schedule
        denoiser = make_denoiser(stage.model, self.spec, schedule, self.times)
        policy = CFGPolicy(batch_cond_uncond=bool(opt(self.settings, "batch_cond_uncond", True)),
                           pad_with=self.pad_with if opt(self.settings, "pad_cond_uncond", False) else None,
                           s_min_uncond=float(self.params.s_min_uncond or opt(self.settings, "s_min_uncond", 0.0)),
                           skip_early_cond=float(opt(self.settings, "skip_early_cond", 0.0)),
                           s_min_uncond_all=bool(opt(self.settings, "s_min_uncond_all", False)),
                           pad_v0=bool(opt(self.settings, "pad_cond_uncond_v0", False)))
        cfg = CFGDenoiser(denoiser, hooks=self.hooks, policy=policy, image_cfg_scale=self.image_cfg_scale,
                          total_steps=total_steps, cond_scale_multiplier=self.spec.cfg_scale_multiplier)
        cfg.step = self.step_offset
        model: Any = cfg
        if self.mask is not None:
            cfg.mask, cfg.nmask, cfg.init_latent = self.mask, self.nmask, self.init_latent
            cfg.mask_blend = self.blend
        options = sampler_options(self.spec, self.params, self.settings)
        if _accepts(self.spec.function, "noise_sampler"):
            per_image = not opt(self.settings, "no_dpmpp_sde_batch_determinism", False)
            options["noise_sampler"] = noise_sampler_for(self.spec, x, sigmas, self.rng, self.seeds,
                                                         per_image_trees=per_image)
        extra = {"cond": stage.cond, "uncond": stage.uncond, "cond_scale": self.cfg_scale,
                 "image_cond": stage.image_cond}
        try:
            with unet_speedups(stage.model.unet, self.token_merging, self.hypertile):
                out = self.spec.function(model, x, sigmas, extra_args=extra,
                                         callback=self.callback(stage.model.is_sdxl, cfg, stage.model),
                                         disable=not self.console_bars,
                                         **options)
        except Skipped:
            raise
        except Interrupted:
            # A1111 `launch_sampling`: an interrupt ends sampling with the prompt's last x0 prediction (the noisy
            # start before the first model call), which the job decodes and returns as an incomplete image
            self.interrupted = True
            return x if cfg.last_cond_denoised is None else cfg.last_cond_denoised
        check_for_nans(out, "unet", stage.model.dtypes)
        self._record_infotext(cfg, policy)
        return out

    def _record_infotext(self, cfg: CFGDenoiser, policy: CFGPolicy) -> None:
        """A1111's `extra_generation_params` of the CFG rules that acted ("Skip Early CFG", "NGMS",
        "NGMS all steps", "Pad conds", "Pad conds v0") and of the schedule settings."""
        fields = getattr(self.params, "extra_generation_params", None)
        if not isinstance(fields, dict):
            return
        if "early" in cfg.skipped:
            fields["Skip Early CFG"] = policy.skip_early_cond
        if "ngms" in cfg.skipped:
            fields["NGMS"] = policy.s_min_uncond
            if policy.s_min_uncond_all:
                fields["NGMS all steps"] = True
        if cfg.padded_cond_uncond_v0:
            fields["Pad conds v0"] = True
        elif cfg.padded_cond_uncond:
            fields["Pad conds"] = True
        fields.update(schedule_infotext(self.settings))

    def sample(self, base: Pass, x: Tensor, sigmas: Tensor, refiner: Callable[[], Pass] | None = None,
               switch_at: float = 1.0) -> Tensor:
        """Run `sigmas` from `x`; with a refiner (built on demand: loading it swaps the model), hand the remaining
        sigmas over at the switch point."""
        started = time.perf_counter()
        try:
            return self._sample(base, x, sigmas, refiner, switch_at)
        finally:
            if self.times is not None:
                self.times.add("sampling", time.perf_counter() - started)

    def _sample(self, base: Pass, x: Tensor, sigmas: Tensor, refiner: Callable[[], Pass] | None,
                switch_at: float) -> Tensor:
        total = len(sigmas) - 1
        self.job.state.set_sampling_steps(total)
        split = total
        if refiner is not None and opt(self.settings, "refiner_switch_by_sample_steps", False):
            # A1111 `apply_refiner` with `refiner_switch_by_sample_steps`: the share of steps done, not of timesteps
            split = min(total, math.ceil(switch_at * total - 1e-9))
            fields = getattr(self.params, "extra_generation_params", None)
            if isinstance(fields, dict):
                fields["Refiner switch by sampling steps"] = True
        elif refiner is not None:
            ts = model_schedule(base.model).sigma_to_t(sigmas[:-1].clamp(min=1e-8))
            completed = 1.0 - ts / (len(model_schedule(base.model)) - 1)
            after = (completed > switch_at).nonzero()
            split = int(after[0]) if len(after) else total
        x = self._segment(base, x, sigmas[: split + 1], total) if split > 0 else x
        if refiner is not None and split < total and not self.interrupted:
            self.step_offset += split
            x = self._segment(refiner(), x, sigmas[split:], total)
        return x if self.interrupted else x * final_latent_scale(self.spec, sigmas[-1])
