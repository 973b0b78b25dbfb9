"""Euler, Euler a, Heun, DPM2, DPM2 a, LMS: the samplers of Karras et al. 2022 and their ancestral variants.

All share the signature ``sample_x(model, x, sigmas, extra_args=None, callback=None, disable=None, **options)``
(k-diffusion's); ``model(x, sigma, **extra_args)`` returns the denoised x0. ``sigmas`` is a decreasing schedule that
may or may not end in 0; ``len(sigmas) - 1`` steps are taken. Every function also accepts ``should_stop``: a
callable checked before each step that raises :class:`~modules.sampling.common.SamplingInterrupted` when it returns
True.
"""

from __future__ import annotations

from typing import Any

import numpy as np
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
    report,
    steps,
    to_d,
)
from .noise import randn_noise_sampler

SQRT2_MINUS_1 = 2**0.5 - 1


def _churn(
    x: Tensor, sigma: Tensor, n_steps: int, s_churn: float, s_tmin: float, s_tmax: float, s_noise: float,
    noise: NoiseSampler, sigma_next: Tensor,
) -> tuple[Tensor, Tensor]:
    """Karras et al. 2022, Algorithm 2 lines 4-6: raise the noise level to ``sigma_hat = sigma * (1 + gamma)``.

    gamma = min(S_churn / N, sqrt(2) - 1) inside [S_tmin, S_tmax], else 0. One noise draw is consumed per step even
    when gamma is 0, as A1111/k-diffusion do, so the noise stream of later steps does not depend on S_tmin/S_tmax.
    """
    gamma = min(s_churn / n_steps, SQRT2_MINUS_1) if s_tmin <= float(sigma) <= s_tmax else 0.0
    eps = noise(sigma, sigma_next) * s_noise
    sigma_hat = sigma * (gamma + 1)
    if gamma > 0:
        x = x + eps * (sigma_hat**2 - sigma**2) ** 0.5
    return x, sigma_hat


@torch.no_grad()
def sample_euler(
    model: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None, disable: bool | None = None, s_churn: float = 0.0, s_tmin: float = 0.0,
    s_tmax: float = float("inf"), s_noise: float = 1.0, noise_sampler: NoiseSampler | None = None,
    should_stop: ShouldStop | None = None,
) -> Tensor:
    """Euler steps on the probability-flow ODE with optional churn: Karras et al. 2022, Algorithm 2 (Euler variant)."""
    extra_args = extra_args or {}
    noise = noise_sampler or randn_noise_sampler(x)
    denoised = None
    for i in steps(len(sigmas) - 1, disable):
        check_stop(should_stop, i, x, denoised)
        x, sigma_hat = _churn(x, sigmas[i], len(sigmas) - 1, s_churn, s_tmin, s_tmax, s_noise, noise, sigmas[i + 1])
        denoised = model(x, batch_sigma(x, sigma_hat), **extra_args)
        d = to_d(x, sigma_hat, denoised)
        report(callback, x, i, sigmas[i], sigma_hat, denoised)
        x = x + d * (sigmas[i + 1] - sigma_hat)
    return x


@torch.no_grad()
def sample_euler_ancestral(
    model: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None, disable: bool | None = None, eta: float = 1.0, s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None, should_stop: ShouldStop | None = None,
) -> Tensor:
    """Euler a: an Euler step down to sigma_down, then fresh noise of std sigma_up (DDPM ancestral sampling,
    Ho et al. 2020, in the sigma parameterisation of Karras et al. 2022; eta as in DDIM, Song et al. 2021)."""
    extra_args = extra_args or {}
    noise = noise_sampler or randn_noise_sampler(x)
    denoised = None
    for i in steps(len(sigmas) - 1, disable):
        check_stop(should_stop, i, x, denoised)
        denoised = model(x, batch_sigma(x, sigmas[i]), **extra_args)
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_heun(
    model: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None, disable: bool | None = None, s_churn: float = 0.0, s_tmin: float = 0.0,
    s_tmax: float = float("inf"), s_noise: float = 1.0, noise_sampler: NoiseSampler | None = None,
    should_stop: ShouldStop | None = None,
) -> Tensor:
    """Heun's 2nd-order method (trapezoidal correction): Karras et al. 2022, Algorithm 2. The step to sigma = 0 is
    a plain Euler step, since the derivative at sigma = 0 is undefined."""
    extra_args = extra_args or {}
    noise = noise_sampler or randn_noise_sampler(x)
    denoised = None
    for i in steps(len(sigmas) - 1, disable):
        check_stop(should_stop, i, x, denoised)
        x, sigma_hat = _churn(x, sigmas[i], len(sigmas) - 1, s_churn, s_tmin, s_tmax, s_noise, noise, sigmas[i + 1])
        denoised = model(x, batch_sigma(x, sigma_hat), **extra_args)
        d = to_d(x, sigma_hat, denoised)
        report(callback, x, i, sigmas[i], sigma_hat, denoised)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            denoised_2 = model(x_2, batch_sigma(x, sigmas[i + 1]), **extra_args)
            d_2 = to_d(x_2, sigmas[i + 1], denoised_2)
            x = x + (d + d_2) / 2 * dt
    return x


@torch.no_grad()
def sample_dpm_2(
    model: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None, disable: bool | None = None, s_churn: float = 0.0, s_tmin: float = 0.0,
    s_tmax: float = float("inf"), s_noise: float = 1.0, noise_sampler: NoiseSampler | None = None,
    should_stop: ShouldStop | None = None,
) -> Tensor:
    """DPM2: the midpoint method with the midpoint taken in log-sigma (DPM-Solver-2, Lu et al. 2022,
    arXiv:2206.00927, Algorithm 1 with r = 1/2, written on the Karras ODE) plus Karras churn."""
    extra_args = extra_args or {}
    noise = noise_sampler or randn_noise_sampler(x)
    denoised = None
    for i in steps(len(sigmas) - 1, disable):
        check_stop(should_stop, i, x, denoised)
        x, sigma_hat = _churn(x, sigmas[i], len(sigmas) - 1, s_churn, s_tmin, s_tmax, s_noise, noise, sigmas[i + 1])
        denoised = model(x, batch_sigma(x, sigma_hat), **extra_args)
        d = to_d(x, sigma_hat, denoised)
        report(callback, x, i, sigmas[i], sigma_hat, denoised)
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigma_hat)
        else:
            sigma_mid = ((sigma_hat.log() + sigmas[i + 1].log()) / 2).exp()
            x_2 = x + d * (sigma_mid - sigma_hat)
            denoised_2 = model(x_2, batch_sigma(x, sigma_mid), **extra_args)
            x = x + to_d(x_2, sigma_mid, denoised_2) * (sigmas[i + 1] - sigma_hat)
    return x


@torch.no_grad()
def sample_dpm_2_ancestral(
    model: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None, disable: bool | None = None, eta: float = 1.0, s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None, should_stop: ShouldStop | None = None,
) -> Tensor:
    """DPM2 a: a DPM2 (log-sigma midpoint) step down to sigma_down followed by ancestral noise sigma_up."""
    extra_args = extra_args or {}
    noise = noise_sampler or randn_noise_sampler(x)
    denoised = None
    for i in steps(len(sigmas) - 1, disable):
        check_stop(should_stop, i, x, denoised)
        denoised = model(x, batch_sigma(x, sigmas[i]), **extra_args)
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        d = to_d(x, sigmas[i], denoised)
        if sigma_down == 0:
            x = x + d * (sigma_down - sigmas[i])
        else:
            sigma_mid = ((sigmas[i].log() + torch.as_tensor(sigma_down).log()) / 2).exp()
            x_2 = x + d * (sigma_mid - sigmas[i])
            denoised_2 = model(x_2, batch_sigma(x, sigma_mid), **extra_args)
            x = x + to_d(x_2, sigma_mid, denoised_2) * (sigma_down - sigmas[i])
            x = x + noise(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


def linear_multistep_coeff(order: int, t: np.ndarray, i: int, j: int) -> float:
    """Adams-Bashforth weight of the derivative at ``t[i - j]`` for the step ``t[i] -> t[i + 1]`` on a variable grid.

    The integral over [t[i], t[i+1]] of the Lagrange basis polynomial through ``t[i], ..., t[i - order + 1]``
    (Karras et al. 2022 LMS / classic variable-step linear multistep), computed exactly with numpy polynomials.
    """
    if order - 1 > i:
        raise ValueError(f"LMS order {order} is too high for step {i}")
    poly = np.polynomial.Polynomial([1.0])
    for k in range(order):
        if k != j:
            poly = poly * np.polynomial.Polynomial([-t[i - k], 1.0]) / (t[i - j] - t[i - k])
    antiderivative = poly.integ()
    return float(antiderivative(t[i + 1]) - antiderivative(t[i]))


@torch.no_grad()
def sample_lms(
    model: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None, disable: bool | None = None, order: int = 4,
    should_stop: ShouldStop | None = None,
) -> Tensor:
    """LMS: variable-step Adams-Bashforth of up to ``order`` on the Karras ODE (k-diffusion's "LMS")."""
    extra_args = extra_args or {}
    sigmas_np = sigmas.detach().cpu().double().numpy()
    history: list[Tensor] = []
    denoised = None
    for i in steps(len(sigmas) - 1, disable):
        check_stop(should_stop, i, x, denoised)
        denoised = model(x, batch_sigma(x, sigmas[i]), **extra_args)
        history.append(to_d(x, sigmas[i], denoised))
        if len(history) > order:
            history.pop(0)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        cur_order = min(i + 1, order)
        coeffs = [linear_multistep_coeff(cur_order, sigmas_np, i, j) for j in range(cur_order)]
        x = x + sum(c * d for c, d in zip(coeffs, reversed(history), strict=False))
    return x
