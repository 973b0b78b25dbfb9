"""Samplers on the real networks: the tiny SD1 and SDXL checkpoints through our UNet and the eps denoiser.

(1) Every k-diffusion sampler equals k-diffusion's own implementation on the tiny SD1 UNet, with the same sigmas
and the same noise, to 1e-5. (2) Every registered sampler × {Automatic, Karras, Exponential} × steps {1, 2, 3, 20}
gives a finite latent on the tiny SD1 and SDXL UNets (A1111 users saw `UnboundLocalError … 'h'` in DPM++ 3M SDE).
Conditioning is random tensors of the right shapes: these tests are about the samplers, not the prompts.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from test_samplers import ANCESTRAL, DETERMINISTIC, KeyedNoise, load_kdiffusion_sampling, oracle_crashes

from modules.models.architectures import detect_architecture
from modules.models.nn.unet import build_unet
from modules.sampling.denoisers import DiscreteDenoiser, LCMDenoiser
from modules.sampling.discrete import DiscreteSchedule
from modules.sampling.registry import initial_noise_scale, list_samplers, sampler_sigmas
from modules.sampling.schedules import karras_sigmas

LATENT = (1, 4, 8, 8)


class TinyModel:
    """A tiny checkpoint's UNet as a k-diffusion denoiser with fixed random conditioning."""

    def __init__(self, path) -> None:
        state = load_file(str(path))
        match = detect_architecture({k: tuple(v.shape) for k, v in state.items()})
        self.unet = build_unet(match.unet, state, torch.float32)
        g = torch.Generator().manual_seed(3)
        self.context = torch.randn(1, 77, match.unet.context_dim, generator=g)
        adm = match.unet.adm_in_channels
        self.vector = torch.randn(1, adm, generator=g) if adm else None
        self.schedule = DiscreteSchedule.sd_default()
        self.denoiser = DiscreteDenoiser(self.apply_model, self.schedule, match.prediction_type)
        self.lcm = LCMDenoiser(self.apply_model, self.schedule.alphas_cumprod)

    def apply_model(self, x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        with torch.inference_mode():
            return self.unet(x, t, self.context.expand(x.shape[0], -1, -1),
                             None if self.vector is None else self.vector.expand(x.shape[0], -1))


@pytest.fixture(scope="module")
def sd1(tiny_checkpoint) -> TinyModel:
    return TinyModel(tiny_checkpoint("sd1"))


@pytest.fixture(scope="module")
def sdxl(tiny_checkpoint) -> TinyModel:
    return TinyModel(tiny_checkpoint("sdxl"))


def _start(sigma_max: torch.Tensor | float) -> torch.Tensor:
    return torch.randn(LATENT, generator=torch.Generator().manual_seed(11)) * float(sigma_max)


SIGMAS = {"karras-3": karras_sigmas(3, 0.0292, 14.6146), "karras-8": karras_sigmas(8, 0.0292, 14.6146)}


@pytest.mark.parametrize("sched", list(SIGMAS))
@pytest.mark.parametrize(("name", "ours"), DETERMINISTIC + ANCESTRAL, ids=lambda v: v if isinstance(v, str) else "")
def test_samplers_equal_kdiffusion_on_the_tiny_sd1_unet(sd1: TinyModel, name, ours, sched) -> None:
    K = load_kdiffusion_sampling()
    sigmas = SIGMAS[sched]
    if oracle_crashes(name, sigmas):
        pytest.skip("k-diffusion itself crashes on this schedule")
    x = _start(sigmas[0])
    noise = KeyedNoise(x)
    extra = {} if (name, ours) in DETERMINISTIC else {"noise_sampler": noise}
    expected = getattr(K, name)(sd1.denoiser, x.clone(), sigmas, disable=True, **extra)
    got = ours(sd1.denoiser, x.clone(), sigmas, disable=True, **extra)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def _run_registered(model: TinyModel, spec, schedule: str, steps: int) -> torch.Tensor:
    denoiser = model.lcm if spec.denoiser == "lcm" else model.denoiser
    automatic = model.lcm.get_sigmas if spec.denoiser == "lcm" else None
    sigmas = sampler_sigmas(spec, steps, schedule, denoiser.schedule if spec.denoiser == "lcm" else model.schedule,
                            automatic=automatic)
    x = torch.randn(LATENT, generator=torch.Generator().manual_seed(5)) * initial_noise_scale(spec, sigmas[0])
    options = dict(spec.options)
    if spec.brownian_noise:
        options["seed"] = [1]
    return spec.function(denoiser, x, sigmas, disable=True, **options)


@pytest.mark.parametrize("steps", [1, 2, 3, 20])
@pytest.mark.parametrize("schedule", ["Automatic", "Karras", "Exponential"])
@pytest.mark.parametrize("spec", list_samplers(), ids=lambda s: s.name)
def test_every_sampler_is_finite_on_tiny_sd1_and_sdxl(sd1: TinyModel, sdxl: TinyModel, spec, schedule, steps) -> None:
    for model in (sd1, sdxl):
        out = _run_registered(model, spec, schedule, steps)
        assert out.shape == LATENT and torch.isfinite(out).all(), (spec.name, schedule, steps)
