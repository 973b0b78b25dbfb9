"""DPM fast and DPM adaptive: the original (noise-prediction) DPM-Solver.

Source: Lu et al. 2022, "DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic Model Sampling in Around 10 Steps"
(arXiv:2206.00927). In the VE scaling (alpha = 1) with ``t = lambda = -log(sigma)`` and ``eps = (x - D(x)) / sigma``:

* DPM-Solver-1 (eq. 3.7 = DDIM): ``x_t = x_s - sigma_t * expm1(h) * eps_s``
* DPM-Solver-2 (Algorithm 1) and DPM-Solver-3 (Algorithm 2) with intermediate points ``s + r h``.
* "Fast" (section 3.4): NFE split into K = floor(NFE/3) + 1 uniform log-SNR steps of order 3 ending with 2/1.
* "Adaptive" (section 5 / appendix: DPM-Solver-12 and -23) with a PID step-size controller (Söderlind 2003) on the
  difference between the lower- and higher-order solutions; the step count is ignored.

Both run from ``sigmas[0]`` to the smallest positive sigma of the schedule; A1111 passes the model's own
sigma_max/sigma_min and ``n = steps``, which is what an Automatic (model-discrete) schedule gives here. With
``eta > 0`` each step becomes ancestral (A1111 passes its Eta option, default 1).
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
    positive_sigma_range,
    report,
)
from .noise import randn_noise_sampler


class _DPMSolver:
    """Evaluates eps with a per-step cache so stages sharing a point call the model once."""

    def __init__(self, model: Denoiser, extra_args: dict[str, Any], should_stop: ShouldStop | None) -> None:
        self.model = model
        self.extra_args = extra_args
        self.should_stop = should_stop
        self.nfe = 0

    @staticmethod
    def t(sigma: Tensor) -> Tensor:
        return torch.as_tensor(sigma).log().neg()

    @staticmethod
    def sigma(t: Tensor) -> Tensor:
        return t.neg().exp()

    def eps(self, cache: dict[str, Tensor], key: str, x: Tensor, t: Tensor) -> Tensor:
        if key not in cache:
            sigma = self.sigma(t)
            cache[key] = (x - self.model(x, batch_sigma(x, sigma), **self.extra_args)) / sigma
            self.nfe += 1
        return cache[key]

    def step_1(self, x: Tensor, t: Tensor, t_next: Tensor, cache: dict[str, Tensor]) -> Tensor:
        h = t_next - t
        return x - self.sigma(t_next) * h.expm1() * self.eps(cache, "eps", x, t)

    def step_2(self, x: Tensor, t: Tensor, t_next: Tensor, cache: dict[str, Tensor], r1: float = 0.5) -> Tensor:
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1 = t + r1 * h
        u1 = x - self.sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        return x - self.sigma(t_next) * h.expm1() * eps - self.sigma(t_next) / (2 * r1) * h.expm1() * (eps_r1 - eps)

    def step_3(
        self, x: Tensor, t: Tensor, t_next: Tensor, cache: dict[str, Tensor], r1: float = 1 / 3, r2: float = 2 / 3
    ) -> Tensor:
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1, s2 = t + r1 * h, t + r2 * h
        u1 = x - self.sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        u2 = (
            x
            - self.sigma(s2) * (r2 * h).expm1() * eps
            - self.sigma(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (eps_r1 - eps)
        )
        eps_r2 = self.eps(cache, "eps_r2", u2, s2)
        return x - self.sigma(t_next) * h.expm1() * eps - self.sigma(t_next) / r2 * (h.expm1() / h - 1) * (eps_r2 - eps)

    def ancestral_target(self, s: Tensor, t: Tensor, t_end: Tensor, eta: float) -> tuple[Tensor, Tensor | float]:
        """Deterministic target time and noise std for an ancestral step s -> t (never past t_end)."""
        if not eta:
            return t, 0.0
        sd, _ = ancestral_step(self.sigma(s), self.sigma(t), eta)
        t_ = torch.minimum(t_end, self.t(sd))
        return t_, (self.sigma(t) ** 2 - self.sigma(t_) ** 2) ** 0.5


def fast_orders(nfe: int) -> list[int]:
    """DPM-Solver-fast order list (Lu et al. 2022, section 3.4): K = floor(NFE/3) + 1 steps summing to NFE."""
    m = nfe // 3 + 1
    if nfe % 3 == 0:
        return [3] * (m - 2) + [2, 1]
    return [3] * (m - 1) + [nfe % 3]


@torch.no_grad()
def sample_dpm_fast(
    model: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None, disable: bool | None = None, eta: float = 0.0, s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None, sigma_min: float | None = None,
    should_stop: ShouldStop | None = None,
) -> Tensor:
    """DPM fast: DPM-Solver-fast with NFE = ``len(sigmas) - 1`` from ``sigmas[0]`` down to ``sigma_min`` (default:
    the smallest positive sigma of the schedule; A1111 passes the model's sigma_min). A schedule with a single
    positive sigma and no ``sigma_min`` has nowhere to integrate to: the result is the denoised estimate."""
    nfe = len(sigmas) - 1
    if nfe < 1:
        return x
    lowest, _ = positive_sigma_range(sigmas)
    sigma_max = sigmas[0]
    if sigma_min is None and lowest >= sigma_max:
        check_stop(should_stop, 0, x, None)
        estimate = model(x, batch_sigma(x, sigma_max), **(extra_args or {}))
        report(callback, x, 0, sigma_max, sigma_max, estimate)
        return estimate
    sigma_end = lowest if sigma_min is None else torch.as_tensor(float(sigma_min))
    solver = _DPMSolver(model, extra_args or {}, should_stop)
    noise = noise_sampler or randn_noise_sampler(x)
    t_start, t_end = solver.t(sigma_max), solver.t(sigma_end)
    orders = fast_orders(nfe)
    ts = torch.linspace(float(t_start), float(t_end), len(orders) + 1, device=x.device)
    t_end = ts[-1]
    denoised: Tensor | None = None
    for i, order in enumerate(orders):
        if should_stop is not None and should_stop():
            raise SamplingInterrupted(i, x, denoised)
        cache: dict[str, Tensor] = {}
        t, t_next = ts[i], ts[i + 1]
        t_next_, su = solver.ancestral_target(t, t_next, t_end, eta)
        eps = solver.eps(cache, "eps", x, t)
        denoised = x - solver.sigma(t) * eps
        report(callback, x, i, solver.sigma(t), solver.sigma(t), denoised)
        if order == 1:
            x = solver.step_1(x, t, t_next_, cache)
        elif order == 2:
            x = solver.step_2(x, t, t_next_, cache)
        else:
            x = solver.step_3(x, t, t_next_, cache)
        x = x + su * s_noise * noise(solver.sigma(t), solver.sigma(t_next))
    return x


class PIDStepSizeController:
    """PID step-size control for the adaptive solver (Söderlind 2003, "Digital filters in adaptive time-stepping";
    with the arctan limiter of Söderlind & Wang 2006). ``propose_step`` rescales ``h`` and says if the step passes."""

    def __init__(
        self, h: float, pcoeff: float, icoeff: float, dcoeff: float, order: float = 1.0,
        accept_safety: float = 0.81, eps: float = 1e-8,
    ) -> None:
        self.h = h
        self.b1 = (pcoeff + icoeff + dcoeff) / order
        self.b2 = -(pcoeff + 2 * dcoeff) / order
        self.b3 = dcoeff / order
        self.accept_safety = accept_safety
        self.eps = eps
        self.errs: list[float] = []

    def propose_step(self, error: Tensor | float) -> bool:
        inv_error = 1 / (float(error) + self.eps)
        if not self.errs:
            self.errs = [inv_error, inv_error, inv_error]
        self.errs[0] = inv_error
        factor = self.errs[0] ** self.b1 * self.errs[1] ** self.b2 * self.errs[2] ** self.b3
        factor = 1 + math.atan(factor - 1)
        accept = factor >= self.accept_safety
        if accept:
            self.errs[2] = self.errs[1]
            self.errs[1] = self.errs[0]
        self.h *= factor
        return accept


@torch.no_grad()
def sample_dpm_adaptive(
    model: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None, disable: bool | None = None, order: int = 3, rtol: float = 0.05,
    atol: float = 0.0078, h_init: float = 0.05, pcoeff: float = 0.0, icoeff: float = 1.0, dcoeff: float = 0.0,
    accept_safety: float = 0.81, eta: float = 0.0, s_noise: float = 1.0, noise_sampler: NoiseSampler | None = None,
    sigma_min: float | None = None, should_stop: ShouldStop | None = None, max_steps: int = 10_000,
) -> Tensor:
    """DPM adaptive: DPM-Solver-12 (order 2) or -23 (order 3) with PID step control from ``sigmas[0]`` to
    ``sigma_min`` (default: the smallest positive sigma); only the schedule's end points are used, so with a single
    positive sigma and no ``sigma_min`` the result is the denoised estimate. ``max_steps`` bounds the loop."""
    if order not in (2, 3):
        raise ValueError(f"DPM adaptive: order must be 2 or 3, got {order}")
    if len(sigmas) < 2:
        return x
    lowest, _ = positive_sigma_range(sigmas)
    if sigma_min is None and lowest >= sigmas[0]:
        check_stop(should_stop, 0, x, None)
        estimate = model(x, batch_sigma(x, sigmas[0]), **(extra_args or {}))
        report(callback, x, 0, sigmas[0], sigmas[0], estimate)
        return estimate
    sigma_end = lowest if sigma_min is None else torch.as_tensor(float(sigma_min))
    solver = _DPMSolver(model, extra_args or {}, should_stop)
    noise = noise_sampler or randn_noise_sampler(x)
    s, t_end = solver.t(sigmas[0]), solver.t(sigma_end)
    atol_t, rtol_t = torch.tensor(atol), torch.tensor(rtol)
    pid = PIDStepSizeController(abs(h_init), pcoeff, icoeff, dcoeff, 1.5 if eta else order, accept_safety)
    x_prev = x
    denoised: Tensor | None = None
    n = 0
    while s < t_end - 1e-5 and n < max_steps:
        if should_stop is not None and should_stop():
            raise SamplingInterrupted(n, x, denoised)
        cache: dict[str, Tensor] = {}
        t = torch.minimum(t_end, s + pid.h)
        t_, su = solver.ancestral_target(s, t, t_end, eta)
        eps = solver.eps(cache, "eps", x, s)
        denoised = x - solver.sigma(s) * eps
        if order == 2:
            x_low = solver.step_1(x, s, t_, cache)
            x_high = solver.step_2(x, s, t_, cache)
        else:
            x_low = solver.step_2(x, s, t_, cache, r1=1 / 3)
            x_high = solver.step_3(x, s, t_, cache)
        delta = torch.maximum(atol_t, rtol_t * torch.maximum(x_low.abs(), x_prev.abs()))
        error = torch.linalg.norm((x_low - x_high) / delta) / x.numel() ** 0.5
        if pid.propose_step(error):
            x_prev = x_low
            x = x_high + su * s_noise * noise(solver.sigma(s), solver.sigma(t))
            s = t
        report(callback, x, n, solver.sigma(s), solver.sigma(s), denoised)
        n += 1
    return x
