"""Every registered sampler x {Automatic, Karras, Exponential} x steps {1, 2, 3, 20} runs on the analytic toy model,
with sigmas ending in 0 and not, and gives a finite latent (A1111 users hit UnboundLocalError in DPM++ 3M SDE)."""

from __future__ import annotations

import pytest
import torch
from test_samplers import GaussianDenoiser

from modules.sampling.denoisers import LCMDenoiser
from modules.sampling.discrete import DiscreteSchedule
from modules.sampling.registry import list_samplers, sampler_sigmas

MODEL = DiscreteSchedule.sd_default()
LCM = LCMDenoiser(lambda x, t, c: x, MODEL.alphas_cumprod)


def run(spec, sigmas: torch.Tensor) -> torch.Tensor:
    x = torch.randn(2, 4, 5, 6, generator=torch.Generator().manual_seed(0)) * sigmas[0]
    options = dict(spec.options)
    if spec.brownian_noise:
        options["seed"] = [1, 2]
    return spec.function(GaussianDenoiser(), x, sigmas, **options)


@pytest.mark.parametrize("steps", [1, 2, 3, 20])
@pytest.mark.parametrize("schedule", ["Automatic", "Karras", "Exponential"])
@pytest.mark.parametrize("spec", list_samplers(), ids=lambda s: s.name)
def test_every_sampler_schedule_and_step_count_is_finite(spec, schedule, steps):
    automatic = LCM.get_sigmas if spec.denoiser == "lcm" else None
    sigmas = sampler_sigmas(spec, steps, schedule, MODEL, automatic=automatic)
    out = run(spec, sigmas)
    assert out.shape == (2, 4, 5, 6) and torch.isfinite(out).all()
    if sigmas[-1] > 0:
        return
    trimmed = sigmas[:-1]  # the same schedule without its final 0
    if len(trimmed) >= 2:
        assert torch.isfinite(run(spec, trimmed)).all()


@pytest.mark.parametrize("spec", list_samplers(), ids=lambda s: s.name)
def test_twenty_steps_land_near_the_data(spec):
    """A sanity check of the whole chain: 20 steps end close to the data scale (the toy data has std <= 1.5)."""
    sigmas = sampler_sigmas(spec, 20, "Automatic", MODEL, automatic=LCM.get_sigmas if spec.denoiser == "lcm" else None)
    out = run(spec, sigmas)
    assert float(out.abs().max()) < 10.0
