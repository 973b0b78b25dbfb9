"""DDIM, DDIM CFG++, PLMS and UniPC written in sigma space with the common sampler signature.

A1111 runs these on the model's discrete timesteps in the VP scaling (``x_vp = sqrt(alphabar) x0 + sqrt(1 -
alphabar) eps``). Dividing by sqrt(alphabar) maps that onto the VE scaling used here (``x = x_vp / sqrt(alphabar)
= x0 + sigma eps``, sigma = sqrt((1 - alphabar) / alphabar)), where each update becomes the formula below. Feed
them :func:`~modules.sampling.schedules.timestep_sampler_sigmas` / :func:`~modules.sampling.schedules.unipc_sigmas`
to reproduce A1111's timestep choice; any other decreasing schedule works as well.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .common import (
    Callback,
    Denoiser,
    NoiseSampler,
    SamplingInterrupted,
    ShouldStop,
    Tensor,
    ancestral_step,
    batch_sigma,
    check_stop,
    report,
    steps,
)
from .noise import randn_noise_sampler


@torch.no_grad()
def sample_ddim(
    model: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None, disable: bool | None = None, eta: float = 0.0, s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None, should_stop: ShouldStop | None = None,
) -> Tensor:
    """DDIM (Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12 with sigma_t(eta) of eq. 16).

    In sigma space the update is ``x' = x0_hat + sigma_down * eps_hat + sigma_up * z`` with ``eps_hat = (x -
    x0_hat) / sigma``; DDIM's ``sigma_t(eta) / sqrt(alphabar_prev)`` equals the ancestral ``sigma_up`` and
    ``sqrt(1 - alphabar_prev - sigma_t^2) / sqrt(alphabar_prev)`` equals ``sigma_down``. A1111 default eta = 0.
    """
    return _ddim_loop(model, x, sigmas, extra_args, callback, disable, eta, s_noise, noise_sampler, should_stop, False)


@torch.no_grad()
def sample_ddim_cfgpp(
    model: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None, disable: bool | None = None, eta: float = 0.0, s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None, should_stop: ShouldStop | None = None,
) -> Tensor:
    """DDIM CFG++ (Chung et al. 2024, "CFG++: Manifold-constrained Classifier Free Guidance", arXiv:2406.08070,
    Algorithm 1): the guided x0 estimate is re-noised along the *unconditional* noise estimate.

    The model should be a :class:`~modules.sampling.cfg_denoiser.CFGDenoiser` built with the CFG-scale
    multiplier 1/12.5 of the registry entry (A1111 maps CFG 0-12.5 onto CFG++'s lambda 0-1); it exposes
    ``last_uncond_denoised``. A plain denoiser without it falls back to DDIM.
    """
    return _ddim_loop(model, x, sigmas, extra_args, callback, disable, eta, s_noise, noise_sampler, should_stop, True)


def _ddim_loop(
    model: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict[str, Any] | None, callback: Callback | None,
    disable: bool | None, eta: float, s_noise: float, noise_sampler: NoiseSampler | None,
    should_stop: ShouldStop | None, cfgpp: bool,
) -> Tensor:
    extra_args = extra_args or {}
    noise = noise_sampler or randn_noise_sampler(x)
    denoised = None
    for i in steps(len(sigmas) - 1, disable):
        check_stop(should_stop, i, x, denoised)
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(x, sigma), **extra_args)
        direction = denoised
        if cfgpp:
            uncond = getattr(model, "last_uncond_denoised", None)
            direction = uncond if uncond is not None else denoised
        eps = (x - direction) / sigma
        sigma_down, sigma_up = ancestral_step(sigma, sigma_next, eta)
        x = denoised + eps * sigma_down
        if eta and sigma_next > 0:
            x = x + noise(sigma, sigma_next) * s_noise * sigma_up
        report(callback, x, i, sigma, sigma, denoised)
    return x


@torch.no_grad()
def sample_plms(
    model: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None, disable: bool | None = None, should_stop: ShouldStop | None = None,
) -> Tensor:
    """PLMS (Liu et al. 2022, "Pseudo Numerical Methods for Diffusion Models on Manifolds", eq. 12-13, the
    variant of the LDM code base that A1111 ships): a DDIM transfer step driven by an Adams-Bashforth combination of
    the last four noise estimates; the first step is the pseudo improved-Euler (two evaluations, averaged eps).

    In sigma space the DDIM (eta = 0) transfer with noise estimate e is ``x' = x + (sigma_next - sigma) * e``.
    """
    extra_args = extra_args or {}
    old_eps: list[Tensor] = []
    denoised = None
    for i in steps(len(sigmas) - 1, disable):
        check_stop(should_stop, i, x, denoised)
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        e_t = (x - model(x, batch_sigma(x, sigma), **extra_args)) / sigma
        if not old_eps:
            if sigma_next > 0:
                x_next = x + (sigma_next - sigma) * e_t
                e_next = (x_next - model(x_next, batch_sigma(x, sigma_next), **extra_args)) / sigma_next
                e_prime = (e_t + e_next) / 2
            else:
                e_prime = e_t  # the second evaluation would sit at sigma = 0, where eps is undefined
        elif len(old_eps) == 1:
            e_prime = (3 * e_t - old_eps[-1]) / 2
        elif len(old_eps) == 2:
            e_prime = (23 * e_t - 16 * old_eps[-1] + 5 * old_eps[-2]) / 12
        else:
            e_prime = (55 * e_t - 59 * old_eps[-1] + 37 * old_eps[-2] - 9 * old_eps[-3]) / 24
        denoised = x - sigma * e_prime
        x = x + (sigma_next - sigma) * e_prime
        old_eps.append(e_t)
        if len(old_eps) >= 4:
            old_eps.pop(0)
        report(callback, x, i, sigma, sigma, denoised)
    return x


def _unipc_coefficients(rks: list[float], hh: float, order: int, variant: str) -> tuple[list[list[float]], list[float], float]:
    """R matrix, b vector and B(h) of UniPC's order conditions (Zhao et al. 2023, Theorem 3.1 / Algorithm 2):
    ``R[i][k] = r_k^i``, ``b_i = h phi_{i+1}(h) * i! / B(h)``; B(h) = h ("bh1") or e^h - 1 ("bh2")."""
    if variant == "bh1":
        b_h = hh
    elif variant == "bh2":
        b_h = math.expm1(hh)
    else:
        raise ValueError(f"UniPC variant must be 'bh1', 'bh2' or 'vary_coeff', got {variant!r}")
    h_phi_k = math.expm1(hh) / hh - 1
    factorial = 1
    rows: list[list[float]] = []
    b: list[float] = []
    for i in range(1, order + 1):
        rows.append([r ** (i - 1) for r in rks])
        b.append(h_phi_k * factorial / b_h)
        factorial *= i + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    return rows, b, b_h


def _solve(rows: list[list[float]], b: list[float]) -> list[float]:
    return torch.linalg.solve(torch.tensor(rows, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)).tolist()


@torch.no_grad()
def sample_unipc(
    model: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None, disable: bool | None = None, order: int = 3, variant: str = "bh1",
    lower_order_final: bool = True, should_stop: ShouldStop | None = None,
) -> Tensor:
    """UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of Diffusion
    Models", arXiv:2302.04867), multistep data-prediction UniP-p with the UniC-p corrector after every step but
    the last, in lambda = -log(sigma). A1111 options: ``uni_pc_order`` 3, ``uni_pc_variant`` "bh1",
    ``uni_pc_lower_order_final`` True; "vary_coeff" is the paper's varying-coefficient form (`_unipc_vary_step`).
    The order is capped by the number of steps (A1111 asserts instead); a step to sigma = 0 returns the current x0
    estimate.
    """
    if variant not in ("bh1", "bh2", "vary_coeff"):
        raise ValueError(f"UniPC variant must be 'bh1', 'bh2' or 'vary_coeff', got {variant!r}")
    extra_args = extra_args or {}
    n = len(sigmas) - 1
    if n < 1:
        return x
    order = max(1, min(order, n))

    def data(x_: Tensor, sigma: Tensor) -> Tensor:
        return model(x_, batch_sigma(x_, sigma), **extra_args)

    def lam(sigma: Tensor) -> float:
        return -math.log(float(sigma))

    check_stop(should_stop, 0, x, None)
    models = [data(x, sigmas[0])]
    lambdas = [lam(sigmas[0])]
    sigma_prev = sigmas[0]
    progress = iter(steps(n, disable))
    for step in range(1, n + 1):
        next(progress, None)
        if should_stop is not None and should_stop():
            raise SamplingInterrupted(step, x, models[-1])
        sigma_t = sigmas[step]
        if step < order:
            step_order = step
        elif lower_order_final:
            step_order = min(order, n + 1 - step)
        else:
            step_order = order
        use_corrector = step < n
        m0 = models[-1]
        if sigma_t == 0:
            x, model_t = m0, None
        elif variant == "vary_coeff":
            x, model_t = _unipc_vary_step(data, x, models, lambdas, sigma_prev, sigma_t, step_order, use_corrector)
        else:
            x, model_t = _unipc_step(data, x, models, lambdas, sigma_prev, sigma_t, step_order, variant, use_corrector)
        report(callback, x, step - 1, sigma_prev, sigma_prev, m0 if model_t is None else model_t)
        if step < n:
            models.append(model_t if model_t is not None else data(x, sigma_t))
            lambdas.append(lam(sigma_t))
            if len(models) > order:
                models.pop(0)
                lambdas.pop(0)
        sigma_prev = sigma_t
    return x


def _unipc_step(
    data: Any, x: Tensor, models: list[Tensor], lambdas: list[float], sigma_s: Tensor, sigma_t: Tensor,
    order: int, variant: str, use_corrector: bool,
) -> tuple[Tensor, Tensor | None]:
    """One UniP-p predictor step s -> t with optional UniC-p correction (VE scaling: alpha = 1)."""
    m0, lambda_s = models[-1], lambdas[-1]
    lambda_t = -math.log(float(sigma_t))
    h = lambda_t - lambda_s
    rks = [(lambdas[-(k + 1)] - lambda_s) / h for k in range(1, order)]
    d1s = [(models[-(k + 1)] - m0) / rk for k, rk in zip(range(1, order), rks, strict=True)]
    rows, b, b_h = _unipc_coefficients([*rks, 1.0], -h, order, variant)
    h_phi_1 = math.expm1(-h)
    x_t_ = (sigma_t / sigma_s) * x - h_phi_1 * m0
    x_t = x_t_
    if d1s:
        rhos_p = [0.5] if order == 2 else _solve([r[:-1] for r in rows[:-1]], b[:-1])
        x_t = x_t_ - b_h * sum(rho * d for rho, d in zip(rhos_p, d1s, strict=True))
    if not use_corrector:
        return x_t, None
    model_t = data(x_t, sigma_t)
    rhos_c = [0.5] if order == 1 else _solve(rows, b)
    corr = sum((rho * d for rho, d in zip(rhos_c[:-1], d1s, strict=True)), torch.zeros_like(x))
    x_t = x_t_ - b_h * (corr + rhos_c[-1] * (model_t - m0))
    return x_t, model_t


def _unipc_vary_step(
    data: Any, x: Tensor, models: list[Tensor], lambdas: list[float], sigma_s: Tensor, sigma_t: Tensor,
    order: int, use_corrector: bool,
) -> tuple[Tensor, Tensor | None]:
    """One UniPC step with varying coefficients (A1111's "vary_coeff" UniPC variant).

    The scaled derivatives ``h^n x0^(n)`` (n = 1..K-1) are recovered from the divided differences
    ``D_i = (m_i - m_0) / r_i`` by inverting ``C[i][n] = r_i^n / (n + 1)!`` (the previous points for the predictor,
    those plus the new point r = 1 for the corrector) and weighted by ``h phi_{n+1}(h)``. As in the reference
    implementation A1111 ships, the corrector adds the new point's term once, with the last weight ``phi_{K+1}``
    and the last row's coefficient.
    """
    m0, lambda_s = models[-1], lambdas[-1]
    h = -math.log(float(sigma_t)) - lambda_s
    rks = [(lambdas[-(k + 1)] - lambda_s) / h for k in range(1, order)]
    d1s = [(models[-(k + 1)] - m0) / rk for k, rk in zip(range(1, order), rks, strict=True)]
    points = [*rks, 1.0]
    size = len(points)
    c = torch.tensor([[r ** n / math.factorial(n + 1) for n in range(size)] for r in points], dtype=torch.float64)
    hh = -h
    h_phis = [math.expm1(hh)]
    for k in range(1, size + 1):
        h_phis.append(h_phis[-1] / hh - 1 / math.factorial(k))
    x_t_ = (sigma_t / sigma_s) * x - h_phis[0] * m0

    def weighted(inverse: Tensor, row: int) -> Tensor:
        return sum((float(inverse[row][j]) * d for j, d in enumerate(d1s)), torch.zeros_like(x))

    x_t = x_t_
    if d1s:
        a_p = torch.linalg.inv(c[:-1, :-1])
        for k in range(size - 1):
            x_t = x_t - h_phis[k + 1] * weighted(a_p, k)
    if not use_corrector:
        return x_t, None
    model_t = data(x_t, sigma_t)
    a_c = torch.linalg.inv(c)
    x_t = x_t_
    last = 0
    for k in range(size - 1):
        x_t = x_t - h_phis[k + 1] * weighted(a_c, k)
        last = k
    x_t = x_t - h_phis[size] * float(a_c[last][-1]) * (model_t - m0)
    return x_t, model_t
