"""Shared pieces of every sampler: the step loop, progress callback, interrupt check and the Karras ODE helpers.

Conventions (k-diffusion's, Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative
Models", arXiv:2206.00364): a latent at noise level sigma is ``x = x0 + sigma * eps``; the model passed to a sampler
is a *denoiser* ``model(x, sigma_batch, **extra_args) -> x0_hat``; the probability-flow ODE is
``dx/dsigma = (x - x0_hat) / sigma``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import torch
from tqdm.auto import trange

Tensor = torch.Tensor
Callback = Callable[[dict[str, Any]], None]
ShouldStop = Callable[[], bool]


class Denoiser(Protocol):
    """What a sampler calls: ``model(x, sigma, **extra_args)`` returns the denoised x0 estimate."""

    def __call__(self, x: Tensor, sigma: Tensor, **extra_args: Any) -> Tensor: ...


class NoiseSampler(Protocol):
    """A source of unit Gaussian noise for the step from ``sigma`` to ``sigma_next`` (same shape as the latent)."""

    def __call__(self, sigma: Tensor | float, sigma_next: Tensor | float) -> Tensor: ...


class SamplingInterrupted(Exception):
    """Raised when ``should_stop()`` returns True (A1111 Interrupt/Skip).

    ``x`` is the latent at the moment of the stop and ``denoised`` the newest x0 estimate (None before the first
    model call); A1111 returns its last latent in this case, so callers can do the same.
    """

    def __init__(self, step: int, x: Tensor, denoised: Tensor | None) -> None:
        super().__init__(f"sampling interrupted before step {step}")
        self.step = step
        self.x = x
        self.denoised = denoised


def append_dims(v: Tensor, ndim: int) -> Tensor:
    """Append trailing singleton dims so a per-sample vector ``v`` broadcasts against a tensor of ``ndim`` dims."""
    missing = ndim - v.ndim
    if missing < 0:
        raise ValueError(f"cannot broadcast a {v.ndim}-dim tensor to {ndim} dims")
    return v[(...,) + (None,) * missing]


def to_d(x: Tensor, sigma: Tensor, denoised: Tensor) -> Tensor:
    """Karras et al. 2022 eq. 3 (VE form): the ODE derivative ``dx/dsigma = (x - D(x; sigma)) / sigma``."""
    return (x - denoised) / append_dims(torch.as_tensor(sigma, device=x.device, dtype=x.dtype), x.ndim)


def ancestral_step(sigma_from: Tensor, sigma_to: Tensor, eta: float = 1.0) -> tuple[Tensor, Tensor | float]:
    """Split a step into a deterministic part down to ``sigma_down`` and fresh noise of std ``sigma_up``.

    DDPM ancestral sampling (Ho et al. 2020) written in sigma space: with eta = 1 the step equals the DDPM posterior;
    eta scales the stochastic part as in DDIM (Song et al. 2021, eq. 16). ``sigma_down**2 + sigma_up**2 = sigma_to**2``.
    """
    if not eta:
        return sigma_to, 0.0
    sigma_up = torch.minimum(
        torch.as_tensor(sigma_to),
        eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5,
    )
    sigma_down = (sigma_to**2 - sigma_up**2) ** 0.5
    return sigma_down, sigma_up


def batch_sigma(x: Tensor, sigma: Tensor | float) -> Tensor:
    """The per-sample sigma vector handed to the model (one value repeated over the batch)."""
    return x.new_ones([x.shape[0]]) * sigma


def steps(n: int, disable: bool | None) -> Iterator[int]:
    """Progress-bar step range (tqdm, like k-diffusion: ``disable=None`` hides it on non-terminals)."""
    return iter(trange(n, disable=True if disable is None else disable))


def check_stop(should_stop: ShouldStop | None, step: int, x: Tensor, denoised: Tensor | None) -> None:
    """Raise :class:`SamplingInterrupted` when the caller asked to stop; checked before every model step."""
    if should_stop is not None and should_stop():
        raise SamplingInterrupted(step, x, denoised)


def report(
    callback: Callback | None, x: Tensor, i: int, sigma: Tensor | float, sigma_hat: Tensor | float, denoised: Tensor
) -> None:
    """Send A1111's per-step callback dict ``{x, i, sigma, sigma_hat, denoised}`` (k-diffusion convention)."""
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma_hat, "denoised": denoised})


def positive_sigma_range(sigmas: Tensor) -> tuple[Tensor, Tensor]:
    """(smallest non-zero sigma, largest sigma) of a schedule: the interval an SDE noise source must cover."""
    positive = sigmas[sigmas > 0]
    if positive.numel() == 0:
        raise ValueError("the sigma schedule has no positive sigma; nothing to sample")
    return positive.min(), sigmas.max()
