"""Restart and LCM samplers (A1111 1.6+ / 1.8+), with the common sampler signature."""

from __future__ import annotations

import itertools
from typing import Any

import torch

from .common import (
    Callback,
    Denoiser,
    NoiseSampler,
    SamplingInterrupted,
    ShouldStop,
    Tensor,
    batch_sigma,
    check_stop,
    report,
    steps,
    to_d,
)
from .noise import randn_noise_sampler
from .schedules import karras_sigmas

RestartList = dict[float, tuple[int, int, float]]


def restart_plan(sigmas: Tensor, restart_list: RestartList | None = None) -> list[tuple[Tensor, Tensor]]:
    """The (sigma_from, sigma_to) Heun steps of a Restart run, restart segments included.

    A1111's automatic plan (Xu et al. 2023 defaults for SD): with 20+ steps the main schedule is rebuilt as Karras
    over the same end points with ``steps - restart_steps * restart_times`` steps, and one restart interval at sigma
    0.1 jumps back to sigma 2 and re-descends in ``restart_steps`` Karras steps (9 steps once; with 36+ steps
    ``steps // 4`` steps twice). Fewer than 20 steps: no restart (plain Heun). ``restart_list`` maps
    ``min_sigma -> (restart_steps + 1, restart_times, max_sigma)`` like A1111's option.
    """
    n = len(sigmas) - 1
    ends_in_zero = bool(sigmas[-1] == 0)
    if restart_list is None:
        restart_list = {}
        if n >= 20:
            restart_steps, restart_times = (n // 4, 2) if n >= 36 else (9, 1)
            lowest = sigmas[-2] if ends_in_zero else sigmas[-1]
            main = karras_sigmas(n - restart_steps * restart_times, float(lowest), float(sigmas[0]))
            sigmas = main.to(sigmas) if ends_in_zero else main[:-1].to(sigmas)
            restart_list = {0.1: (restart_steps + 1, restart_times, 2.0)}
    by_index = {int(torch.argmin((sigmas - key).abs())): value for key, value in restart_list.items()}
    plan: list[tuple[Tensor, Tensor]] = []
    for i in range(len(sigmas) - 1):
        plan.append((sigmas[i], sigmas[i + 1]))
        if i + 1 in by_index:
            restart_steps, restart_times, restart_max = by_index[i + 1]
            min_idx = i + 1
            max_idx = int(torch.argmin((sigmas - restart_max).abs()))
            if max_idx < min_idx:
                seg = karras_sigmas(restart_steps, float(sigmas[min_idx]), float(sigmas[max_idx]))[:-1].to(sigmas)
                for _ in range(restart_times):
                    plan.extend(itertools.pairwise(seg))
    return plan


@torch.no_grad()
def sample_restart(
    model: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None, disable: bool | None = None, s_noise: float = 1.0,
    restart_list: RestartList | None = None, noise_sampler: NoiseSampler | None = None,
    should_stop: ShouldStop | None = None,
) -> Tensor:
    """Restart sampling (Xu et al. 2023, "Restart Sampling for Improving Generative Processes", arXiv:2306.14878,
    Algorithm 1): Heun ODE steps, and at each restart the latent is pushed back up to the restart's top sigma with
    fresh noise of std ``sqrt(sigma_hi^2 - sigma_lo^2)`` before integrating down again. Callback ``sigma`` is the
    step's target and ``sigma_hat`` its start, as in A1111."""
    extra_args = extra_args or {}
    noise = noise_sampler or randn_noise_sampler(x)
    plan = restart_plan(sigmas, restart_list)
    last_sigma: Tensor | None = None
    denoised = None
    for step_id in steps(len(plan), disable):
        check_stop(should_stop, step_id, x, denoised)
        old_sigma, new_sigma = plan[step_id]
        if last_sigma is not None and last_sigma < old_sigma:
            x = x + noise(last_sigma, old_sigma) * s_noise * (old_sigma**2 - last_sigma**2) ** 0.5
        denoised = model(x, batch_sigma(x, old_sigma), **extra_args)
        d = to_d(x, old_sigma, denoised)
        report(callback, x, step_id, new_sigma, old_sigma, denoised)
        dt = new_sigma - old_sigma
        if new_sigma == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            d_2 = to_d(x_2, new_sigma, model(x_2, batch_sigma(x, new_sigma), **extra_args))
            x = x + (d + d_2) / 2 * dt
        last_sigma = new_sigma
    return x


@torch.no_grad()
def sample_lcm(
    model: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None, disable: bool | None = None, noise_sampler: NoiseSampler | None = None,
    should_stop: ShouldStop | None = None,
) -> Tensor:
    """LCM multistep sampling (Luo et al. 2023, "Latent Consistency Models", Algorithm 1 / Song et al. 2023
    consistency-model multistep sampling): jump to the consistency model's x0, then re-noise to the next sigma with
    fresh noise (none after the last step). Use with :class:`~modules.sampling.denoisers.LCMDenoiser`."""
    extra_args = extra_args or {}
    noise = noise_sampler or randn_noise_sampler(x)
    denoised = None
    for i in steps(len(sigmas) - 1, disable):
        check_stop(should_stop, i, x, denoised)
        denoised = model(x, batch_sigma(x, sigmas[i]), **extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        x = denoised
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * noise(sigmas[i], sigmas[i + 1])
    return x


__all__ = ["SamplingInterrupted", "restart_plan", "sample_lcm", "sample_restart"]
