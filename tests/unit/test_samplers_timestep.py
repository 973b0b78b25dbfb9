"""DDIM, DDIM CFG++, PLMS, UniPC, LCM and Restart against independent references.

References (none share code with ours):
* DDIM / PLMS / UniPC / LCM: diffusers' DDIMScheduler, PNDMScheduler (PLMS mode), UniPCMultistepScheduler and
  LCMScheduler, run in the VP scaling on the same alphas_cumprod (SD's scaled-linear betas) with the same
  eps-model. Our samplers run in sigma space through :class:`DiscreteDenoiser`; results are compared after
  mapping back to VP (``x_vp = x / sqrt(1 + sigma^2)``).
  A1111's DDIM/PLMS stop at timestep 1 (``steps - 1`` model steps), which equals the first ``steps - 1`` diffusers
  steps with ``steps_offset=1, set_alpha_to_one=False`` ("leading" spacing).
* DDIM CFG++: the update of Chung et al. 2024 (Algorithm 1) computed by hand in the VP scaling.
* Restart: k-diffusion's Heun (oracle) composed over the restart plan with the restart noise added by hand.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, LCMScheduler, PNDMScheduler, UniPCMultistepScheduler
from test_samplers import KeyedNoise, load_kdiffusion_sampling

from modules.sampling.denoisers import DiscreteDenoiser, LCMDenoiser
from modules.sampling.discrete import DiscreteSchedule
from modules.sampling.registry import final_latent_scale, resolve_sampler
from modules.sampling.samplers_extra import restart_plan, sample_lcm, sample_restart
from modules.sampling.samplers_timestep import sample_ddim, sample_ddim_cfgpp, sample_plms, sample_unipc
from modules.sampling.schedules import karras_sigmas, timestep_sampler_sigmas

TOL = 1e-5
SD_BETAS = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
SHAPE = (2, 4, 5, 6)


class ToyEpsModel:
    """An eps-prediction "UNet" in the VP scaling whose x0 guess is the exact Gaussian-data posterior mean."""

    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        g = torch.Generator().manual_seed(4321)
        self.mu = torch.randn(SHAPE[1:], generator=g)
        self.s = 0.5 + torch.rand(SHAPE[1:], generator=g)
        self.schedule = DiscreteSchedule(alphas_cumprod)

    def __call__(self, x_vp: torch.Tensor, t: torch.Tensor | int, cond: dict | None = None) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float32).reshape(-1).expand(x_vp.shape[0])
        sigma = self.schedule.t_to_sigma(t).reshape(-1, 1, 1, 1).float()
        x = x_vp * (1 + sigma**2) ** 0.5
        x0 = self.mu + self.s**2 / (self.s**2 + sigma**2) * (x - self.mu)
        return (x - x0) / sigma


def scheduler_alphas(scheduler) -> torch.Tensor:
    return scheduler.alphas_cumprod.float()


def noise_vp() -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(11))


def to_vp(x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    return x / (1 + float(sigma) ** 2) ** 0.5


def test_timestep_sampler_grid_is_a1111s():
    """A1111: clip(range(0, 1000, 1000 // steps) + 1, 0, 999), walked from the top; 1 step gets t = 999 added."""
    schedule = DiscreteSchedule.sd_default()
    for steps, ts in {3: [999, 667, 334, 1], 4: [751, 501, 251, 1], 1: [999, 1], 7: [995, 853, 711, 569, 427, 285, 143, 1]}.items():
        assert torch.equal(timestep_sampler_sigmas(steps, schedule), schedule.sigmas[torch.tensor(ts)].float()), steps
    assert len(timestep_sampler_sigmas(4, schedule, discard_penultimate=True)) == 5


@pytest.mark.parametrize("steps", [2, 4, 5, 20])
@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_ddim_matches_diffusers(steps, eta):
    ref = DDIMScheduler(**SD_BETAS, clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    ref.set_timesteps(steps)
    eps_model = ToyEpsModel(scheduler_alphas(ref))
    zs = [torch.randn(SHAPE, generator=torch.Generator().manual_seed(100 + i)) for i in range(steps)]
    x = noise_vp()
    for i, t in enumerate(ref.timesteps[:-1]):
        x = ref.step(eps_model(x, t), int(t), x, eta=eta, variance_noise=zs[i], return_dict=False)[0]
    schedule = DiscreteSchedule(scheduler_alphas(ref))
    sigmas = timestep_sampler_sigmas(steps, schedule)
    queue = list(zs)
    ours = sample_ddim(DiscreteDenoiser(eps_model, schedule), noise_vp() * (1 + float(sigmas[0]) ** 2) ** 0.5, sigmas,
                       eta=eta, noise_sampler=lambda s, sn: queue.pop(0))
    spec, _ = resolve_sampler("DDIM")
    torch.testing.assert_close(ours * final_latent_scale(spec, sigmas[-1]), x, atol=TOL, rtol=TOL)


def test_ddim_cfgpp_follows_the_cfgpp_update():
    """One step by hand: x_prev = sqrt(a_prev) x0_guided + sqrt(1 - a_prev) eps_uncond (VP, eta = 0)."""
    schedule = DiscreteSchedule.sd_default()
    sigmas = timestep_sampler_sigmas(3, schedule)[:2]
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3)) * sigmas[0]
    guided = torch.randn(SHAPE, generator=torch.Generator().manual_seed(4))
    uncond = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5))

    class Model:
        last_uncond_denoised = None

        def __call__(self, x_, sigma, **_):
            self.last_uncond_denoised = uncond
            return guided

    out = sample_ddim_cfgpp(Model(), x.clone(), sigmas)
    a_t, a_prev = 1 / (1 + sigmas[0] ** 2), 1 / (1 + sigmas[1] ** 2)
    x_vp = x * a_t.sqrt()
    eps_uncond = (x_vp - a_t.sqrt() * uncond) / (1 - a_t).sqrt()
    expected_vp = a_prev.sqrt() * guided + (1 - a_prev).sqrt() * eps_uncond
    torch.testing.assert_close(out * a_prev.sqrt(), expected_vp, atol=TOL, rtol=TOL)
    assert resolve_sampler("ddim_cfgpp")[0].cfg_scale_multiplier == pytest.approx(1 / 12.5)


def test_ddim_cfgpp_without_uncond_prediction_is_ddim():
    schedule = DiscreteSchedule.sd_default()
    sigmas = timestep_sampler_sigmas(6, schedule)
    model = DiscreteDenoiser(ToyEpsModel(schedule.alphas_cumprod), schedule)
    x = noise_vp() * sigmas[0]
    torch.testing.assert_close(sample_ddim_cfgpp(model, x.clone(), sigmas), sample_ddim(model, x.clone(), sigmas))


@pytest.mark.parametrize("steps", [2, 4, 5, 10, 20])
def test_plms_matches_diffusers_pndm(steps):
    ref = PNDMScheduler(**SD_BETAS, skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    ref.set_timesteps(steps)
    eps_model = ToyEpsModel(scheduler_alphas(ref))
    x = noise_vp()
    # A1111 stops at timestep 1: diffusers' first `steps` calls (the first A1111 step costs two evaluations)
    for t in ref.timesteps[:steps]:
        x = ref.step(eps_model(x, t), int(t), x, return_dict=False)[0]
    schedule = DiscreteSchedule(scheduler_alphas(ref))
    sigmas = timestep_sampler_sigmas(steps, schedule)
    ours = sample_plms(DiscreteDenoiser(eps_model, schedule), noise_vp() * (1 + float(sigmas[0]) ** 2) ** 0.5, sigmas)
    torch.testing.assert_close(to_vp(ours, sigmas[-1]), x, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 6, 12])
@pytest.mark.parametrize("variant", ["bh1", "bh2"])
@pytest.mark.parametrize("order", [2, 3])
def test_unipc_matches_diffusers(steps, variant, order):
    ref = UniPCMultistepScheduler(**SD_BETAS, solver_order=order, solver_type=variant, predict_x0=True,
                                  lower_order_final=True, final_sigmas_type="sigma_min")
    ref.set_timesteps(steps)
    eps_model = ToyEpsModel(scheduler_alphas(ref))
    x = noise_vp()
    for t in ref.timesteps:
        x = ref.step(eps_model(x, t), t, x, return_dict=False)[0]
    schedule = DiscreteSchedule(scheduler_alphas(ref))
    sigmas = torch.cat([schedule.sigmas[ref.timesteps.long()], schedule.sigmas[:1]]).float()
    ours = sample_unipc(DiscreteDenoiser(eps_model, schedule), noise_vp() * (1 + float(sigmas[0]) ** 2) ** 0.5,
                        sigmas, order=order, variant=variant)
    torch.testing.assert_close(to_vp(ours, sigmas[-1]), x, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("steps", [1, 2, 4, 8])
def test_lcm_matches_diffusers(steps):
    ref = LCMScheduler(**SD_BETAS, set_alpha_to_one=True)
    ref.set_timesteps(steps)
    eps_model = ToyEpsModel(scheduler_alphas(ref))
    gen = torch.Generator().manual_seed(77)
    x = noise_vp()
    for t in ref.timesteps:
        x = ref.step(eps_model(x, t), t, x, generator=gen, return_dict=False)[0]
    denoiser = LCMDenoiser(eps_model, scheduler_alphas(ref))
    full = DiscreteSchedule(scheduler_alphas(ref))
    sigmas = torch.cat([full.sigmas[ref.timesteps.long()], torch.zeros(1)]).float()
    gen2 = torch.Generator().manual_seed(77)
    ours = sample_lcm(denoiser, noise_vp() * (1 + float(sigmas[0]) ** 2) ** 0.5, sigmas,
                      noise_sampler=lambda s, sn: torch.randn(SHAPE, generator=gen2))
    torch.testing.assert_close(ours, x, atol=TOL, rtol=TOL)


def test_lcm_automatic_schedule_uses_the_50_step_table():
    denoiser = LCMDenoiser(lambda x, t, c: x, DiscreteSchedule.sd_default().alphas_cumprod)
    sigmas = denoiser.get_sigmas(4)
    full = DiscreteSchedule.sd_default()
    assert len(sigmas) == 5 and sigmas[-1] == 0
    assert float(sigmas[0]) == pytest.approx(float(full.sigmas[999]), rel=1e-5)
    assert float(sigmas[-2]) == pytest.approx(float(full.sigmas[19]), rel=1e-5)
    assert torch.equal(denoiser.timesteps(sigmas[:-1]), torch.tensor([999.0, 679.0, 339.0, 19.0]))


def test_restart_below_20_steps_is_heun():
    K = load_kdiffusion_sampling()
    sigmas = karras_sigmas(10, 0.0292, 14.6146)
    from test_samplers import GaussianDenoiser, start

    x = start(sigmas)
    expected = K.sample_heun(GaussianDenoiser(), x.clone(), sigmas, disable=True)
    torch.testing.assert_close(sample_restart(GaussianDenoiser(), x.clone(), sigmas), expected, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("steps", [20, 40])
def test_restart_plan_and_result_follow_a1111_rule(steps):
    K = load_kdiffusion_sampling()
    from test_samplers import GaussianDenoiser, start

    sigmas = karras_sigmas(steps, 0.0292, 14.6146)
    restart_steps, times = (9, 1) if steps < 36 else (steps // 4, 2)
    main = karras_sigmas(steps - restart_steps * times, float(sigmas[-2]), float(sigmas[0]))
    idx = int(torch.argmin((main - 0.1).abs()))
    top = int(torch.argmin((main - 2.0).abs()))
    seg = karras_sigmas(restart_steps + 1, float(main[idx]), float(main[top]))[:-1]
    plan = restart_plan(sigmas)
    assert len(plan) == (len(main) - 1) + times * (len(seg) - 1)

    x = start(sigmas)
    noise = KeyedNoise(x)
    ref = K.sample_heun(GaussianDenoiser(), x.clone(), main[: idx + 1], disable=True)
    for _ in range(times):
        ref = ref + noise(main[idx], seg[0]) * (seg[0] ** 2 - main[idx] ** 2) ** 0.5
        ref = K.sample_heun(GaussianDenoiser(), ref, seg, disable=True)
    ref = K.sample_heun(GaussianDenoiser(), ref, main[idx:], disable=True)
    got = sample_restart(GaussianDenoiser(), x.clone(), sigmas, noise_sampler=noise)
    torch.testing.assert_close(got, ref, atol=TOL, rtol=TOL)
