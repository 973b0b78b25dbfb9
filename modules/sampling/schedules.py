"""Sigma schedules ("Schedule type" in A1111 1.9+), with A1111's names, labels, defaults and formulas.

Each schedule function returns a decreasing float32 tensor of sigmas, usually ``n + 1`` long and ending in 0
(exceptions kept from A1111: KL Optimal ends at sigma_min, DDIM may return a different length).
``get_sigmas`` implements A1111's ``KDiffusionSampler.get_sigmas``: Automatic -> the sampler's default schedule or
else the model's own discrete sigmas; sigma_min / sigma_max / rho overrides; "discard penultimate sigma".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .discrete import DiscreteSchedule

Tensor = torch.Tensor


def _append_zero(sigmas: Tensor) -> Tensor:
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> Tensor:
    """Karras et al. 2022, eq. 5: ``(sigma_max^(1/rho) + i/(n-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``."""
    ramp = torch.linspace(0, 1, n)
    max_inv, min_inv = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return _append_zero((max_inv + ramp * (min_inv - max_inv)) ** rho)


def exponential_sigmas(n: int, sigma_min: float, sigma_max: float) -> Tensor:
    """Evenly spaced in log-sigma from sigma_max to sigma_min (k-diffusion "exponential")."""
    return _append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n).exp())


def polyexponential_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> Tensor:
    """log-sigma follows ``ramp^rho`` with ramp 1 -> 0 (k-diffusion "polyexponential"; rho = 1 is exponential)."""
    ramp = torch.linspace(1, 0, n) ** rho
    return _append_zero(torch.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min)))


def uniform_sigmas(n: int, model: DiscreteSchedule) -> Tensor:
    """A1111 "Uniform": the model's own schedule, timesteps evenly spaced from T-1 to 0."""
    return model.get_sigmas(n).float()


def sgm_uniform_sigmas(n: int, sigma_min: float, sigma_max: float, model: DiscreteSchedule) -> Tensor:
    """A1111 "SGM Uniform" (SGM / SDXL-Turbo's discretisation): n + 1 timesteps evenly spaced between
    t(sigma_max) and t(sigma_min), the last dropped, then a final 0."""
    start, end = model.sigma_to_t(torch.tensor(sigma_max)), model.sigma_to_t(torch.tensor(sigma_min))
    ts = torch.linspace(float(start), float(end), n + 1)[:-1]
    return _append_zero(model.t_to_sigma(ts).float())


def normal_sigmas(n: int, sigma_min: float, sigma_max: float, model: DiscreteSchedule) -> Tensor:
    """A1111 "Normal": n timesteps evenly spaced from t(sigma_max) to t(sigma_min) inclusive, then a final 0."""
    start, end = model.sigma_to_t(torch.tensor(sigma_max)), model.sigma_to_t(torch.tensor(sigma_min))
    ts = torch.linspace(float(start), float(end), n)
    return _append_zero(model.t_to_sigma(ts).float())


def simple_sigmas(n: int, model: DiscreteSchedule) -> Tensor:
    """A1111 "Simple": every (T/n)-th model sigma counted down from the top: ``sigmas[-(1 + int(i * T / n))]``."""
    stride = len(model) / n
    picked = [float(model.sigmas[-(1 + int(i * stride))]) for i in range(n)]
    return torch.tensor([*picked, 0.0], dtype=torch.float32)


def ddim_sigmas(n: int, model: DiscreteSchedule) -> Tensor:
    """A1111 "DDIM" schedule: model sigmas at timesteps 1, 1 + k, 1 + 2k, ... (k = max(T // n, 1)), reversed, then
    0. Like A1111 this can give a different number of steps than n when T is not a multiple of n."""
    stride = max(len(model) // n, 1)
    picked = [float(model.sigmas[t]) for t in range(1, len(model), stride)]
    return torch.tensor([*picked[::-1], 0.0], dtype=torch.float32)


def kl_optimal_sigmas(n: int, sigma_min: float, sigma_max: float) -> Tensor:
    """"KL Optimal" (Sabour et al. 2024, "Align Your Steps", eq. for the KL-optimal schedule): evenly spaced in
    arctan(sigma): ``tan((1 - i/n) atan(sigma_max) + i/n atan(sigma_min))`` for i = 0..n; ends at sigma_min."""
    a_min, a_max = math.atan(sigma_min), math.atan(sigma_max)
    i = torch.arange(n + 1, dtype=torch.float32)
    return torch.tan(i / n * a_min + (1.0 - i / n) * a_max)


AYS_SD15 = (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029)
AYS_SDXL = (14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029)


def loglinear_interp(values: tuple[float, ...] | list[float], num: int) -> np.ndarray:
    """Resample a decreasing sequence to ``num`` points by linear interpolation of log-values (NVIDIA's AYS
    how-to, which A1111 follows)."""
    xs = np.linspace(0, 1, len(values))
    ys = np.log(np.asarray(values, dtype=np.float64)[::-1])
    new_ys = np.interp(np.linspace(0, 1, num), xs, ys)
    return np.exp(new_ys)[::-1].copy()


def align_your_steps_sigmas(n: int, is_sdxl: bool = False) -> Tensor:
    """"Align Your Steps" (Sabour et al. 2024): NVIDIA's optimised 10-step sigma tables for SD 1.5 / SDXL,
    log-linearly resampled to n sigmas when n != 11, then a final 0."""
    table = AYS_SDXL if is_sdxl else AYS_SD15
    picked = list(table) if n == len(table) else loglinear_interp(table, n).tolist()
    return torch.tensor([*picked, 0.0], dtype=torch.float32)


def beta_sigmas(n: int, sigma_min: float, sigma_max: float, alpha: float = 0.6, beta: float = 0.6) -> Tensor:
    """"Beta" (Lee et al. 2024, "Beta Sampling is All You Need", arXiv:2407.12173) as A1111 implements it: the
    Beta(alpha, beta) quantiles of 1 - linspace(0, 1, n), mapped linearly onto [sigma_min, sigma_max], then 0."""
    from scipy import stats  # imported here: scipy.stats costs ~0.7 s of start-up (issue 16) and only Beta needs it

    qs = stats.beta.ppf(1 - np.linspace(0, 1, n), alpha, beta)
    return torch.tensor([*(sigma_min + q * (sigma_max - sigma_min) for q in qs), 0.0], dtype=torch.float32)


@dataclass(frozen=True)
class Scheduler:
    """One "Schedule type": ``name`` (API), ``label`` (UI/infotext), ``default_rho`` (-1 = no rho parameter),
    ``need_inner_model`` (uses the model's discrete sigmas), ``aliases``. Mirrors ``GET /sdapi/v1/schedulers``."""

    name: str
    label: str
    function: Callable[..., Tensor] | None
    default_rho: float = -1.0
    need_inner_model: bool = False
    aliases: tuple[str, ...] = field(default_factory=tuple)


SCHEDULERS: tuple[Scheduler, ...] = (
    Scheduler("automatic", "Automatic", None),
    Scheduler("uniform", "Uniform", uniform_sigmas, need_inner_model=True),
    Scheduler("karras", "Karras", karras_sigmas, default_rho=7.0),
    Scheduler("exponential", "Exponential", exponential_sigmas),
    Scheduler("polyexponential", "Polyexponential", polyexponential_sigmas, default_rho=1.0),
    Scheduler("sgm_uniform", "SGM Uniform", sgm_uniform_sigmas, need_inner_model=True, aliases=("SGMUniform",)),
    Scheduler("kl_optimal", "KL Optimal", kl_optimal_sigmas),
    Scheduler("align_your_steps", "Align Your Steps", align_your_steps_sigmas),
    Scheduler("simple", "Simple", simple_sigmas, need_inner_model=True),
    Scheduler("normal", "Normal", normal_sigmas, need_inner_model=True),
    Scheduler("ddim", "DDIM", ddim_sigmas, need_inner_model=True),
    Scheduler("beta", "Beta", beta_sigmas, need_inner_model=True),
)


def list_schedulers() -> list[Scheduler]:
    """All schedule types in A1111's order (Automatic first)."""
    return list(SCHEDULERS)


def find_scheduler(name: str | None) -> Scheduler | None:
    """Look a schedule type up by name, label or alias (exact first, then case-insensitive); None if unknown."""
    if name is None:
        return None
    for sched in SCHEDULERS:
        if name in (sched.name, sched.label, *sched.aliases):
            return sched
    low = name.strip().lower()
    for sched in SCHEDULERS:
        if low in (sched.name, sched.label.lower(), *(a.lower() for a in sched.aliases)):
            return sched
    return None


def discard_next_to_last(sigmas: Tensor) -> Tensor:
    """Drop the penultimate sigma (A1111 ``discard_next_to_last_sigma``; DPM2 and DPM++ 3M SDE ask for it)."""
    if len(sigmas) < 3:
        return sigmas
    return torch.cat([sigmas[:-2], sigmas[-1:]])


def get_sigmas(
    steps: int,
    scheduler: str | None,
    model: DiscreteSchedule,
    *,
    sampler_default: str | None = None,
    discard_penultimate: bool = False,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    rho: float | None = None,
    beta_alpha: float = 0.6,
    beta_beta: float = 0.6,
    is_sdxl: bool = False,
    use_old_karras_sigmas: bool = False,
    automatic: Callable[[int], Tensor] | None = None,
) -> Tensor:
    """A1111's sigma selection for k-diffusion-style samplers.

    ``scheduler`` None/"Automatic" -> ``sampler_default`` (the sampler's own choice) or the model's "Uniform"
    sigmas. sigma_min/sigma_max default to the model's range (0.1/10 with ``use_old_karras_sigmas``); an override of
    0/None keeps the default. ``rho`` only applies to schedules that have one (Karras, Polyexponential).
    ``discard_penultimate`` computes one extra step and drops the next-to-last sigma. ``automatic`` replaces the
    model's own schedule (LCM's denoiser has its own).
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    name = scheduler or "automatic"
    sched = find_scheduler(name)
    if sched is None:
        raise ValueError(f"unknown schedule type {scheduler!r}; known: {', '.join(s.label for s in SCHEDULERS)}")
    if sched.function is None and sampler_default:
        sched = find_scheduler(sampler_default)
        if sched is None:
            raise ValueError(f"unknown sampler default schedule {sampler_default!r}")
    n = steps + 1 if discard_penultimate else steps
    lo, hi = (0.1, 10.0) if use_old_karras_sigmas else (float(model.sigma_min), float(model.sigma_max))
    lo = float(sigma_min) if sigma_min else lo
    hi = float(sigma_max) if sigma_max else hi
    if sched.function is None:
        sigmas = automatic(n) if automatic is not None else uniform_sigmas(n, model)
    else:
        kwargs: dict[str, Any] = {}
        fn = sched.function
        if fn in (karras_sigmas, polyexponential_sigmas):
            kwargs = {"sigma_min": lo, "sigma_max": hi, "rho": rho if rho else sched.default_rho}
        elif fn in (exponential_sigmas, kl_optimal_sigmas):
            kwargs = {"sigma_min": lo, "sigma_max": hi}
        elif fn in (sgm_uniform_sigmas, normal_sigmas):
            kwargs = {"sigma_min": lo, "sigma_max": hi, "model": model}
        elif fn in (uniform_sigmas, simple_sigmas, ddim_sigmas):
            kwargs = {"model": model}
        elif fn is beta_sigmas:
            kwargs = {"sigma_min": lo, "sigma_max": hi, "alpha": beta_alpha, "beta": beta_beta}
        elif fn is align_your_steps_sigmas:
            kwargs = {"is_sdxl": is_sdxl}
        sigmas = fn(n, **kwargs)
    sigmas = sigmas.float()
    return discard_next_to_last(sigmas) if discard_penultimate else sigmas


def timestep_sampler_sigmas(steps: int, model: DiscreteSchedule, discard_penultimate: bool = False) -> Tensor:
    """Sigmas of A1111's timestep samplers (DDIM, DDIM CFG++, PLMS), which ignore the schedule type.

    A1111 uses timesteps ``clip(range(0, T, T // steps) + 1, 0, T-1)`` and walks them from the top down to the
    lowest one (timestep 1), so ``steps`` timesteps give ``steps - 1`` model steps and the result stays at the noise
    level of timestep 1. With ``discard_penultimate`` one more timestep is used. A single step would give A1111 no
    step at all; here timestep T-1 is added so one step still denoises.
    """
    n = steps + 1 if discard_penultimate else steps
    total = len(model)
    ts = sorted({min(t + 1, total - 1) for t in range(0, total, max(total // n, 1))})
    if len(ts) < 2:
        ts.append(total - 1)
    return model.sigmas[torch.tensor(ts[::-1])].float()


def unipc_sigmas(steps: int, model: DiscreteSchedule, skip_type: str = "time_uniform") -> Tensor:
    """Sigmas of A1111's UniPC (Zhao et al. 2023, arXiv:2302.04867, official sampler's time grid).

    Continuous time t in [1/T, 1] (timestep k <-> (k+1)/T, log sqrt(alphabar) interpolated linearly), ``steps + 1``
    points from t = 1 to t = 1/T spaced by ``skip_type``: "time_uniform" (linear in t), "time_quadratic" (linear in
    sqrt(t)) or "logSNR" (linear in lambda = log(alpha/sigma)). Ends at timestep 0's sigma, not 0.
    """
    total = len(model)
    t_hi, t_lo = 1.0, 1.0 / total

    def lam(t: Tensor) -> Tensor:
        log_alpha = model.log_alpha_at(t)
        return log_alpha - 0.5 * torch.log(1 - torch.exp(2 * log_alpha))

    if skip_type == "time_uniform":
        ts = torch.linspace(t_hi, t_lo, steps + 1, dtype=torch.float64)
    elif skip_type == "time_quadratic":
        ts = torch.linspace(t_hi**0.5, t_lo**0.5, steps + 1, dtype=torch.float64) ** 2
    elif skip_type == "logSNR":
        lams = torch.linspace(float(lam(torch.tensor(t_hi))), float(lam(torch.tensor(t_lo))), steps + 1)
        # invert lambda(t) on a fine grid (lambda is monotone in t)
        grid = torch.linspace(t_lo, t_hi, 20001, dtype=torch.float64)
        lam_grid = lam(grid)
        ts = torch.from_numpy(np.interp(lams.numpy(), lam_grid.flip(0).numpy(), grid.flip(0).numpy()))
    else:
        raise ValueError(f"unknown UniPC skip type {skip_type!r}; use time_uniform, time_quadratic or logSNR")
    log_alpha = model.log_alpha_at(ts)
    sigma_vp = torch.sqrt(1 - torch.exp(2 * log_alpha))
    return (sigma_vp / torch.exp(log_alpha)).float()
