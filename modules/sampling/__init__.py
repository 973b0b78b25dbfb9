"""Samplers, sigma schedules, the sampler registry and the CFG denoiser (layer 2: never imports modules.models).

Every sampler: ``sample_x(model, x, sigmas, extra_args=None, callback=None, disable=None, **options) -> Tensor``
with ``model(x, sigma, **extra_args) -> denoised x0`` (k-diffusion convention, see ``docs/architecture.md``).
"""

from .cfg_denoiser import (
    AfterCFGCallbackParams,
    CFGDenoisedParams,
    CFGDenoiser,
    CFGDenoiserParams,
    CFGHooks,
    CFGPolicy,
)
from .common import SamplingInterrupted
from .conditioning import CondSchedule, MultiCond, ScheduledCond, WeightedCond
from .denoisers import DiscreteDenoiser, LCMDenoiser
from .discrete import DiscreteSchedule, rescale_zero_terminal_snr, scaled_linear_alphas_cumprod
from .noise import BrownianTreeNoiseSampler, randn_noise_sampler
from .registry import (
    SamplerSpec,
    UnknownSamplerError,
    display_schedule,
    final_latent_scale,
    initial_noise_scale,
    list_samplers,
    resolve_sampler,
    sampler_sigmas,
)
from .schedules import Scheduler, find_scheduler, get_sigmas, list_schedulers

__all__ = [
    "AfterCFGCallbackParams",
    "BrownianTreeNoiseSampler",
    "CFGDenoisedParams",
    "CFGDenoiser",
    "CFGDenoiserParams",
    "CFGHooks",
    "CFGPolicy",
    "CondSchedule",
    "DiscreteDenoiser",
    "DiscreteSchedule",
    "LCMDenoiser",
    "MultiCond",
    "SamplerSpec",
    "SamplingInterrupted",
    "ScheduledCond",
    "Scheduler",
    "UnknownSamplerError",
    "WeightedCond",
    "display_schedule",
    "final_latent_scale",
    "find_scheduler",
    "get_sigmas",
    "initial_noise_scale",
    "list_samplers",
    "list_schedulers",
    "randn_noise_sampler",
    "rescale_zero_terminal_snr",
    "resolve_sampler",
    "sampler_sigmas",
    "scaled_linear_alphas_cumprod",
]
