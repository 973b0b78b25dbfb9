"""img2img alternative test maths (A1111 `scripts/img2imgalt.py`) against the exact probability-flow ODE of Gaussian
data, where the denoiser and the ODE's solution have closed forms (Karras et al. 2022, eq. 1 / the optimal
denoiser of N(μ, s²)): D(x, σ) = μ + s²/(s² + σ²)·(x − μ) and x(σ) = μ + (x₀ − μ)·√(s² + σ²)/s."""

from __future__ import annotations

import math

import torch

from modules.processing.img2img_alt import combine_noise, inversion_sampler
from modules.sampling.samplers_karras import sample_euler

MU, S = 0.3, 0.8


def gaussian_denoiser(x: torch.Tensor, sigma: torch.Tensor, **_extra: object) -> torch.Tensor:
    s = sigma.reshape(-1, *[1] * (x.dim() - 1))
    return MU + S**2 / (S**2 + s**2) * (x - MU)


def schedule(n: int) -> torch.Tensor:
    """0, σ_min … σ_max (ascending, as A1111's flipped `get_sigmas`), geometric from 0.03 to 14.6."""
    return torch.cat([torch.zeros(1), torch.exp(torch.linspace(math.log(0.03), math.log(14.6), n))]).double()


def exact(x0: torch.Tensor, sigma: float) -> torch.Tensor:
    return MU + (x0 - MU) * math.sqrt(S**2 + sigma**2) / S


def test_inversion_follows_the_ode_and_converges_with_steps() -> None:
    x0 = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(0)).double()
    errors = []
    for n in (10, 40, 160):
        sigmas = schedule(n)
        x = inversion_sampler(sigma_adjustment=True)(gaussian_denoiser, x0.clone(), sigmas)
        errors.append(float((x - exact(x0, float(sigmas[-1]))).abs().max()))
    assert errors[2] < errors[1] < errors[0] and errors[2] < 0.05 * float(exact(x0, 14.6).abs().max())


def test_found_noise_sampled_back_with_euler_reproduces_the_latent() -> None:
    x0 = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(1)).double()
    gaps = []
    for n in (20, 200):
        sigmas = schedule(n)
        for adjust in (False, True):
            x = inversion_sampler(adjust)(gaussian_denoiser, x0.clone(), sigmas)
            noise = x / sigmas[-1] if adjust else x / x.std()
            if not adjust:  # A1111 normalises to unit std; for this data the ODE end point has std ≈ σ_max·s/s
                noise = noise * x.std() / sigmas[-1]
            back = sample_euler(gaussian_denoiser, noise * sigmas[-1], torch.cat([sigmas[1:].flip(0),
                                                                                   torch.zeros(1).double()]))
            gaps.append(float((back - x0).abs().max()))
    # first-order Euler both ways: the gap shrinks with the steps; evaluating at the previous sigma (adjusted)
    # matches the sampler's own Euler steps better
    assert gaps[2] < 0.25 * gaps[0] and gaps[3] < 0.25 * gaps[1] and gaps[2] < 0.3 and gaps[3] < 0.1


def test_combined_noise_keeps_unit_variance() -> None:
    a, b = (torch.randn(200_000, generator=torch.Generator().manual_seed(i)) for i in (2, 3))
    assert torch.equal(combine_noise(a, b, 0.0), a) and torch.equal(combine_noise(a, b, 1.0), b)
    assert abs(float(combine_noise(a, b, 0.3).std()) - 1.0) < 0.01
