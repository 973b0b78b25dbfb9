"""img2img alternative test: find the noise that the sampler would turn into the input image, then sample from it.

Facts from A1111 ``scripts/img2imgalt.py`` (reference §9; the "Euler inversion" of the original image):

* ``find_noise_for_image``: the model's own discrete schedule for ``decode steps`` with a 0 appended, reversed
  (``0, σ_min … σ_max``); from the image latent ``x``, for each ``i ≥ 1``: ``denoised = CFG(x, σᵢ)`` with the
  decode prompts and decode CFG scale, ``d = (x − denoised) / σᵢ``, ``x += d · (σᵢ − σᵢ₋₁)``; the noise is
  ``x / std(x)``.
* With "Sigma adjustment" (``find_noise_for_image_sigma_adjustment``) the model is evaluated at the *previous*
  sigma, ``d = (x − CFG(x, σᵢ₋₁)) / σᵢ₋₁``; the first step (σ₀ = 0, where A1111's ``c_out = 0`` makes
  ``denoised = x``) adds nothing; the noise is ``x / σ_max``.
* Sampling starts from ``combined = ((1 − r)·found + r·random) / √(r² + (1 − r)²)`` (``r`` = Randomness, the
  random noise from the job's seeds) as ``init + (combined − init / σ_full[0]) · σ_run[0]`` (A1111 passes
  ``combined − init / sigmas[0]`` to ``sample_img2img``, which adds it times the first sigma it runs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from modules.processing.sampling_glue import make_denoiser, model_schedule


def inversion_sampler(sigma_adjustment: bool) -> Callable[..., Tensor]:
    """A sampler-shaped function (``model, x, sigmas, extra_args, callback, …``) that runs the inversion steps on
    *ascending* sigmas, so the job's CFG denoiser, hooks and progress serve it like any sampler."""

    @torch.no_grad()
    def invert(model: Any, x: Tensor, sigmas: Tensor, extra_args: dict[str, Any] | None = None,
               callback: Callable[[dict[str, Any]], None] | None = None, disable: bool | None = None,
               **_options: Any) -> Tensor:
        extra_args = extra_args or {}
        ones = x.new_ones([x.shape[0]])
        for i in range(1, len(sigmas)):
            if sigma_adjustment and i == 1:
                continue  # σ₀ = 0: denoised == x, the step adds nothing (A1111 c_out = −σ = 0)
            sigma = sigmas[i - 1] if sigma_adjustment else sigmas[i]
            denoised = model(x, sigma * ones, **extra_args)
            if callback is not None:
                callback({"x": x, "i": i - 1, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})
            x = x + (x - denoised) / sigma * (sigmas[i] - sigmas[i - 1])
        return x

    return invert


def decode_sigmas(model: Any, spec: Any, steps: int) -> Tensor:
    """``0, σ_min … σ_max``: the model's discrete schedule for ``steps`` (A1111 ``CompVisDenoiser.get_sigmas``),
    reversed."""
    return make_denoiser(model, spec, model_schedule(model)).get_sigmas(int(steps)).flip(0)


def find_noise(start: Any, cond_stage: Any, cfg_scale: float, steps: int, sigma_adjustment: bool) -> Tensor:
    """The noise that leads to ``start.init_latent`` (see the module docstring); ``start`` is the img2img pass's
    :class:`~modules.processing.img2img_pass.SampleStart`, ``cond_stage`` the conds of the decode prompts."""
    latent = start.init_latent
    sigmas = decode_sigmas(start.model, start.spec, steps).to(latent.device)
    spec = dataclasses.replace(start.spec, function=inversion_sampler(sigma_adjustment), timestep_schedule=None)
    sampling = dataclasses.replace(start.sampling, spec=spec, cfg_scale=float(cfg_scale), mask=None, nmask=None,
                                   init_latent=None, blend=None, step_offset=0)
    x = sampling.sample(cond_stage, latent, sigmas)
    return x / sigmas[-1] if sigma_adjustment else x / x.std()


def combine_noise(found: Tensor, random: Tensor, randomness: float) -> Tensor:
    """``((1 − r)·found + r·random) / √(r² + (1 − r)²)`` (unit variance for independent unit-variance noises)."""
    r = float(randomness)
    return ((1 - r) * found + r * random) / ((r**2 + (1 - r) ** 2) ** 0.5)


def starting_latent(start: Any, combined: Tensor, steps: int) -> Tensor:
    """``init + (combined − init / σ_full[0]) · σ_run[0]`` (σ_full: the model's schedule for the job's steps)."""
    first = make_denoiser(start.model, start.spec, model_schedule(start.model)).get_sigmas(int(steps))[0]
    latent = start.init_latent
    return latent + (combined - latent / first.to(latent)) * start.sigmas[0]
