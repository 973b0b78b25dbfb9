"""Noise sources for stochastic samplers.

* :func:`randn_noise_sampler` - independent Gaussian noise per step (ancestral samplers, churn), optionally drawn
  from per-image ``torch.Generator`` objects so a batch gives the same images as single generation (A1111
  ``enable_batch_seeds``; the processing layer seeds the generators with seed + ENSD).
* :class:`BrownianTreeNoiseSampler` - increments of one Brownian motion per image over sigma, so that SDE samplers
  (DPM++ SDE / 2M SDE / 3M SDE) give the same image whatever the step count's sub-division of the interval
  (Li et al. 2020, "Scalable Gradients for SDEs", the Brownian interval of torchsde). A1111 seeds one tree per
  image from the image seeds.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchsde

from .common import NoiseSampler, Tensor


def randn_noise_sampler(x: Tensor, generators: torch.Generator | Sequence[torch.Generator] | None = None) -> NoiseSampler:
    """Return ``f(sigma, sigma_next) -> N(0, 1)`` noise shaped like ``x``.

    ``generators``: None uses the global torch RNG (``torch.randn_like``, k-diffusion's default); one generator draws
    the whole batch from it; a sequence of ``len(x)`` generators draws image i from generator i (CPU generators
    produce noise on the CPU that is then moved to ``x.device``, A1111's "CPU" RNG source).
    """
    if generators is None:
        return lambda sigma, sigma_next: torch.randn_like(x)

    if isinstance(generators, torch.Generator):
        gen = generators

        def whole_batch(sigma: Tensor | float, sigma_next: Tensor | float) -> Tensor:
            return torch.randn(x.shape, generator=gen, device=gen.device, dtype=x.dtype).to(x.device)

        return whole_batch

    gens = list(generators)
    if len(gens) != x.shape[0]:
        raise ValueError(f"randn_noise_sampler: got {len(gens)} generators for a batch of {x.shape[0]} latents")

    def per_image(sigma: Tensor | float, sigma_next: Tensor | float) -> Tensor:
        return torch.stack(
            [torch.randn(x.shape[1:], generator=g, device=g.device, dtype=x.dtype).to(x.device) for g in gens]
        )

    return per_image


TREE_DIGITS = 6  # torchsde's default tolerance 1e-6


class BrownianTreeNoiseSampler:
    """Normalised Brownian increments ``(W(t1) - W(t0)) / sqrt(|t1 - t0|)`` over sigma.

    ``seed`` is an int (one tree for the whole batch) or a list with one seed per image (one tree per image, so an
    image's noise does not depend on its batch neighbours). A missing seed draws one from the global torch RNG.
    The increment between two sigmas is a fixed function of the seed, so refining the schedule refines the same
    Brownian path (the property DPM-Solver++ SDE relies on, Lu et al. 2022, arXiv:2211.01095).
    """

    def __init__(
        self,
        x: Tensor,
        sigma_min: Tensor | float,
        sigma_max: Tensor | float,
        seed: int | Sequence[int] | None = None,
    ) -> None:
        t0, t1 = float(sigma_min), float(sigma_max)
        if not t0 < t1:
            t0, t1 = min(t0, t1), max(t0, t1)
        if t0 == t1:
            t1 = t0 + 1e-6  # a single-sigma schedule still needs a non-empty interval
        # torchsde rounds the interval ends to its tolerance; queries are kept inside the rounded interval
        self.lo, self.hi = max(t0, round(t0, TREE_DIGITS)), min(t1, round(t1, TREE_DIGITS))
        if seed is None:
            seed = int(torch.randint(0, 2**63 - 1, []).item())
        if isinstance(seed, int):
            self.per_image = False
            seeds = [seed]
            w0 = torch.zeros_like(x)
        else:
            seeds = [int(s) for s in seed]
            if len(seeds) != x.shape[0]:
                raise ValueError(f"BrownianTreeNoiseSampler: got {len(seeds)} seeds for a batch of {x.shape[0]}")
            self.per_image = True
            w0 = torch.zeros_like(x[0])
        t0_t = torch.as_tensor(t0, dtype=x.dtype, device=x.device)
        t1_t = torch.as_tensor(t1, dtype=x.dtype, device=x.device)
        self.trees = [torchsde.BrownianTree(t0_t, w0, t1_t, entropy=s, tol=10.0**-TREE_DIGITS) for s in seeds]

    def __call__(self, sigma: Tensor | float, sigma_next: Tensor | float) -> Tensor:
        a, b = float(sigma), float(sigma_next)
        lo, hi, sign = (a, b, 1.0) if a < b else (b, a, -1.0)
        # The path is anchored at (sigma_min, sigma_max): keep queries inside it (fp32 round-off can overshoot).
        lo = min(max(lo, self.lo), self.hi)
        hi = min(max(hi, self.lo), self.hi)
        w = torch.stack([tree(lo, hi) for tree in self.trees]) * sign
        w = w if self.per_image else w[0]
        return w / abs(b - a) ** 0.5
