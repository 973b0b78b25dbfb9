"""img2img alternative test inversion on the tiny SD1 model (fp32): the noise found from a latent, sampled back
with Euler on the same schedule, reproduces the latent better with more decode steps (first-order convergence of
A1111's Euler inversion; the exact-ODE check is in tests/unit/test_img2img_alt.py)."""

from __future__ import annotations

import types

import pytest
import torch

from modules.processing.img2img_alt import decode_sigmas, inversion_sampler
from modules.processing.sampling_glue import make_denoiser, model_schedule
from modules.sampling.samplers_karras import sample_euler
from tests.fixtures.app_context import context_for


def test_found_noise_decodes_back_to_the_latent_closer_with_more_steps(
        tiny_checkpoint, tmp_path_factory: pytest.TempPathFactory) -> None:
    ctx = context_for(tmp_path_factory.mktemp("img2imgalt"), {"sd1": tiny_checkpoint("sd1")}, args=["--no-half"])
    model = ctx.models.load(None)
    assert model is not None
    spec = types.SimpleNamespace(denoiser="default")
    generator = torch.Generator().manual_seed(0)
    cond = {"crossattn": torch.randn(1, 77, 128, generator=generator)}
    latent = torch.randn(1, 4, 8, 8, generator=generator) * 0.8
    denoiser = make_denoiser(model, spec, model_schedule(model))

    def denoise(x: torch.Tensor, sigma: torch.Tensor, **_extra: object) -> torch.Tensor:
        return denoiser(x, sigma, cond=cond)

    gaps = []
    for steps in (8, 32):
        sigmas = decode_sigmas(model, spec, steps)
        found = inversion_sampler(sigma_adjustment=True)(denoise, latent.clone(), sigmas) / sigmas[-1]
        back = sample_euler(denoise, found * sigmas[-1], sigmas.flip(0))
        gaps.append(float((back - latent).abs().mean()))
    assert gaps[1] < 0.8 * gaps[0], gaps
