"""DPM-Solver++ family: DPM++ 2S a, DPM++ SDE, DPM++ 2M, DPM++ 2M SDE (midpoint / Heun), DPM++ 3M SDE.

Source: Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic Models"
(arXiv:2211.01095): data-prediction exponential integrators in ``t = -log(sigma)`` (= lambda, the half log-SNR, for
the VE/"k-diffusion" scaling where alpha = 1). One step from s to t with h = t - s:
``x_t = (sigma_t / sigma_s) x_s - expm1(-h) * D`` (Algorithm 1/2 of the paper), where D is the denoised estimate
(2S: at a midpoint; 2M: linear extrapolation of the last two). The SDE variants integrate the reverse SDE with the
same exponential integrator (paper's eq. for SDE-DPM-Solver++, eta scaling the noise as in DDIM).

Signature and options as in :mod:`modules.sampling.samplers_karras`. SDE samplers default to a Brownian-tree noise
source over [min positive sigma, max sigma] seeded by ``seed`` (int or one int per image).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .common import (
    Callback,
    Denoiser,
    NoiseSampler,
    ShouldStop,
    Tensor,
    ancestral_step,
    batch_sigma,
    check_stop,
    positive_sigma_range,
    report,
    steps,
    to_d,
)
from .noise import BrownianTreeNoiseSampler, randn_noise_sampler

Seed = int | Sequence[int] | None


def _t(sigma: Tensor) -> Tensor:
    """Log-SNR time of the VE scaling: t = -log(sigma)."""
    return torch.as_tensor(sigma).log().neg()


def _sigma(t: Tensor) -> Tensor:
    """Inverse of :func:`_t`."""
    return t.neg().exp()


def _brownian(x: Tensor, sigmas: Tensor, noise_sampler: NoiseSampler | None, seed: Seed) -> NoiseSampler:
    if noise_sampler is not None:
        return noise_sampler
    sigma_min, sigma_max = positive_sigma_range(sigmas)
    return BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=seed)


@torch.no_grad()
def sample_dpmpp_2s_ancestral(
    model: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None, disable: bool | None = None, eta: float = 1.0, s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None, should_stop: ShouldStop | None = None,
) -> Tensor:
    """DPM++ 2S a: a single-step DPM-Solver++(2S) (Lu et al. 2022, Algorithm 1, r = 1/2) down to sigma_down, then
    ancestral noise sigma_up. The final step to sigma_down = 0 is an Euler step."""
    extra_args = extra_args or {}
    noise = noise_sampler or randn_noise_sampler(x)
    denoised = None
    for i in steps(len(sigmas) - 1, disable):
        check_stop(should_stop, i, x, denoised)
        denoised = model(x, batch_sigma(x, sigmas[i]), **extra_args)
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigma_down == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            t, t_next = _t(sigmas[i]), _t(sigma_down)
            h = t_next - t
            s = t + h / 2
            x_2 = (_sigma(s) / _sigma(t)) * x - (-h / 2).expm1() * denoised
            denoised_2 = model(x_2, batch_sigma(x, _sigma(s)), **extra_args)
            x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_dpmpp_sde(
    model: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None, disable: bool | None = None, eta: float = 1.0, s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None, r: float = 0.5, seed: Seed = None,
    should_stop: ShouldStop | None = None,
) -> Tensor:
    """DPM++ SDE: the stochastic single-step DPM-Solver++ (Lu et al. 2022, section 5 / SDE-DPM-Solver++ with an
    intermediate point at ``s = t + r h``), each sub-step split into a deterministic part and ancestral noise drawn
    from a Brownian tree. The step to sigma = 0 is an Euler step."""
    extra_args = extra_args or {}
    noise = _brownian(x, sigmas, noise_sampler, seed)
    denoised = None
    for i in steps(len(sigmas) - 1, disable):
        check_stop(should_stop, i, x, denoised)
        denoised = model(x, batch_sigma(x, sigmas[i]), **extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
            continue
        t, t_next = _t(sigmas[i]), _t(sigmas[i + 1])
        h = t_next - t
        s = t + h * r
        fac = 1 / (2 * r)
        # stage 1: t -> s
        sd, su = ancestral_step(_sigma(t), _sigma(s), eta)
        s_ = _t(sd)
        x_2 = (_sigma(s_) / _sigma(t)) * x - (t - s_).expm1() * denoised
        x_2 = x_2 + noise(_sigma(t), _sigma(s)) * s_noise * su
        denoised_2 = model(x_2, batch_sigma(x, _sigma(s)), **extra_args)
        # stage 2: t -> t_next with the combined estimate
        sd, su = ancestral_step(_sigma(t), _sigma(t_next), eta)
        t_next_ = _t(sd)
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = (_sigma(t_next_) / _sigma(t)) * x - (t - t_next_).expm1() * denoised_d
        x = x + noise(_sigma(t), _sigma(t_next)) * s_noise * su
    return x


@torch.no_grad()
def sample_dpmpp_2m(
    model: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None, disable: bool | None = None, should_stop: ShouldStop | None = None,
) -> Tensor:
    """DPM++ 2M: multistep DPM-Solver++(2M), Lu et al. 2022, Algorithm 2. The first step and the step to sigma = 0
    are first order (DPM-Solver++(1) = DDIM)."""
    extra_args = extra_args or {}
    old_denoised: Tensor | None = None
    denoised = None
    for i in steps(len(sigmas) - 1, disable):
        check_stop(should_stop, i, x, denoised)
        denoised = model(x, batch_sigma(x, sigmas[i]), **extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        t, t_next = _t(sigmas[i]), _t(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * denoised
        else:
            r = (t - _t(sigmas[i - 1])) / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


@torch.no_grad()
def sample_dpmpp_2m_sde(
    model: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None, disable: bool | None = None, eta: float = 1.0, s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None, solver_type: str = "midpoint", seed: Seed = None,
    should_stop: ShouldStop | None = None,
) -> Tensor:
    """DPM++ 2M SDE: multistep second-order SDE-DPM-Solver++ (Lu et al. 2022, Algorithm in appendix for the SDE
    solver; eta = 1 is the reverse SDE, eta = 0 the ODE solver). ``solver_type`` picks the second-order correction:
    "midpoint" (A1111 "DPM++ 2M SDE") or "heun" (A1111 "DPM++ 2M SDE Heun"). The step to sigma = 0 returns the
    denoised estimate."""
    if solver_type not in ("heun", "midpoint"):
        raise ValueError(f"DPM++ 2M SDE: solver_type must be 'heun' or 'midpoint', got {solver_type!r}")
    extra_args = extra_args or {}
    noise = _brownian(x, sigmas, noise_sampler, seed)
    old_denoised: Tensor | None = None
    h_last: Tensor | None = None
    denoised = None
    for i in steps(len(sigmas) - 1, disable):
        check_stop(should_stop, i, x, denoised)
        denoised = model(x, batch_sigma(x, sigmas[i]), **extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            h = None  # the final step has no log-SNR length; nothing follows it
        else:
            h = _t(sigmas[i + 1]) - _t(sigmas[i])
            eta_h = eta * h
            x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x + (-h - eta_h).expm1().neg() * denoised
            if old_denoised is not None and h_last is not None:
                r = h_last / h
                if solver_type == "heun":
                    coeff = (-h - eta_h).expm1().neg() / (-h - eta_h) + 1
                    x = x + coeff * (1 / r) * (denoised - old_denoised)
                else:
                    x = x + 0.5 * (-h - eta_h).expm1().neg() * (1 / r) * (denoised - old_denoised)
            if eta:
                x = x + noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * eta_h).expm1().neg().sqrt() * s_noise
        old_denoised = denoised
        h_last = h
    return x


@torch.no_grad()
def sample_dpmpp_3m_sde(
    model: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None, disable: bool | None = None, eta: float = 1.0, s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None, seed: Seed = None, should_stop: ShouldStop | None = None,
) -> Tensor:
    """DPM++ 3M SDE: third-order multistep SDE-DPM-Solver++ (Lu et al. 2022, the 3M multistep data-prediction
    update with phi_2 / phi_3 exponential-integrator weights, eta-scaled SDE noise). Order ramps 1 -> 2 -> 3 as
    history accumulates; the step to sigma = 0 returns the denoised estimate. Unlike the k-diffusion/A1111 code it
    never references an unset step length (A1111 issue: ``UnboundLocalError: local variable 'h'`` with few steps)."""
    extra_args = extra_args or {}
    noise = _brownian(x, sigmas, noise_sampler, seed)
    denoised_1: Tensor | None = None
    denoised_2: Tensor | None = None
    h_1: Tensor | None = None
    h_2: Tensor | None = None
    denoised = None
    for i in steps(len(sigmas) - 1, disable):
        check_stop(should_stop, i, x, denoised)
        denoised = model(x, batch_sigma(x, sigmas[i]), **extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        h: Tensor | None
        if sigmas[i + 1] == 0:
            x = denoised
            h = None
        else:
            h = _t(sigmas[i + 1]) - _t(sigmas[i])
            h_eta = h * (eta + 1)
            x = torch.exp(-h_eta) * x + (-h_eta).expm1().neg() * denoised
            phi_2 = h_eta.neg().expm1() / h_eta + 1
            if h_2 is not None and h_1 is not None and denoised_1 is not None and denoised_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None and denoised_1 is not None:
                x = x + phi_2 * (denoised - denoised_1) / (h_1 / h)
            if eta:
                x = x + noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x
