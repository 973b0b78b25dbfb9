"""Sampler-parameter settings reach the engine (A1111 Settings → Sampler parameters / Compatibility).

`uni_pc_order`/`uni_pc_variant`/`uni_pc_lower_order_final` become UniPC's options; `beta_dist_alpha`/`beta_dist_beta`
shape the Beta schedule; `use_old_karras_scheduler_sigmas` uses 0.1…10; `sd_noise_schedule` "Zero Terminal SNR"
and `use_downcasted_alpha_bar` change alphas_cumprod; `skip_early_cond` and `s_min_uncond_all` skip the negative
prompt's pass; the "vary_coeff" UniPC variant samples.
"""

from __future__ import annotations

import torch
from test_samplers_timestep import ToyEpsModel, noise_vp

from modules.processing.sampling_glue import sampler_options, schedule_infotext, schedule_with_settings, sigmas_for
from modules.sampling.cfg_denoiser import CFGDenoiser, CFGPolicy
from modules.sampling.conditioning import CondSchedule, MultiCond
from modules.sampling.denoisers import DiscreteDenoiser
from modules.sampling.discrete import DiscreteSchedule
from modules.sampling.registry import resolve_sampler
from modules.sampling.samplers_timestep import sample_unipc
from modules.sampling.schedules import unipc_sigmas

SCHED = DiscreteSchedule.sd_default()


def denoiser() -> DiscreteDenoiser:
    return DiscreteDenoiser(lambda x, t, cond: x * 0, SCHED)


def test_unipc_options_come_from_the_settings() -> None:
    spec, _ = resolve_sampler("UniPC")
    assert sampler_options(spec, None, {})["variant"] == "bh1"
    options = sampler_options(spec, None, {"uni_pc_order": 2, "uni_pc_variant": "bh2",
                                           "uni_pc_lower_order_final": False})
    assert (options["order"], options["variant"], options["lower_order_final"]) == (2, "bh2", False)
    euler, _ = resolve_sampler("Euler")
    assert "variant" not in sampler_options(euler, None, {"uni_pc_variant": "bh2"})


def test_vary_coeff_unipc_converges_to_the_exact_flow_and_differs_from_bh1() -> None:
    """Gaussian toy data: the probability-flow ODE has the closed form x(s) - mu = (x(s0) - mu) ·
    sqrt((s_d² + s²) / (s_d² + s0²)); "vary_coeff" approaches it as steps grow, like bh1/bh2 (no reference
    implementation to compare with numerically, A1111 vendors it)."""
    model = ToyEpsModel(SCHED.alphas_cumprod)
    den = DiscreteDenoiser(model, SCHED)

    def error(steps: int, variant: str) -> float:
        sigmas = unipc_sigmas(steps, SCHED)
        x = noise_vp() * (1 + float(sigmas[0]) ** 2) ** 0.5
        s0, s1 = float(sigmas[0]), float(sigmas[-1])
        exact = model.mu + (x - model.mu) * ((model.s**2 + s1**2) / (model.s**2 + s0**2)) ** 0.5
        return float((sample_unipc(den, x, sigmas, order=3, variant=variant) - exact).abs().max())

    assert error(80, "vary_coeff") < error(10, "vary_coeff") / 4
    assert error(80, "vary_coeff") < 0.05
    assert error(10, "vary_coeff") != error(10, "bh1")


def test_beta_schedule_and_old_karras_sigmas_follow_the_settings() -> None:
    euler, _ = resolve_sampler("Euler")
    default = sigmas_for(euler, 10, "beta", denoiser(), {}, False)
    shaped = sigmas_for(euler, 10, "beta", denoiser(), {"beta_dist_alpha": 0.3, "beta_dist_beta": 0.9}, False)
    assert not torch.allclose(default, shaped)
    karras = sigmas_for(euler, 10, "karras", denoiser(), {}, False)
    old = sigmas_for(euler, 10, "karras", denoiser(), {"use_old_karras_scheduler_sigmas": True}, False)
    assert float(karras[0]) > 14 and abs(float(old[0]) - 10.0) < 1e-4 and abs(float(old[-2]) - 0.1) < 1e-4


def test_zero_terminal_snr_and_downcast_change_the_schedule() -> None:
    assert schedule_with_settings(SCHED, {}) is SCHED and schedule_infotext({}) == {}
    ztsnr = schedule_with_settings(SCHED, {"sd_noise_schedule": "Zero Terminal SNR"})
    assert float(ztsnr.sigma_max) > 1000 > float(SCHED.sigma_max)
    euler, _ = resolve_sampler("Euler")
    sigmas = sigmas_for(euler, 10, None, denoiser(), {"sd_noise_schedule": "Zero Terminal SNR"}, False)
    assert float(sigmas[0]) > 1000
    down = schedule_with_settings(SCHED, {"use_downcasted_alpha_bar": True})
    assert torch.equal(down.alphas_cumprod, SCHED.alphas_cumprod.half().float())
    assert schedule_infotext({"use_downcasted_alpha_bar": True, "sd_noise_schedule": "Zero Terminal SNR"}) == {
        "Downcast alphas_cumprod": True, "Noise Schedule": "Zero Terminal SNR"}


class CountingUNet:
    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        self.batches.append(x.shape[0])
        return torch.tanh(x) * cond["crossattn"].mean()


def run_cfg(policy: CFGPolicy, steps: int = 4) -> tuple[list[int], set[str]]:
    unet = CountingUNet()
    cfg = CFGDenoiser(DiscreteDenoiser(unet, SCHED), policy=policy, total_steps=steps)
    x = torch.ones(1, 4, 2, 2)
    cond = CondSchedule.constant({"crossattn": torch.full((77, 8), 0.5)})
    uncond = CondSchedule.constant({"crossattn": torch.full((77, 8), 0.1)})
    for _ in range(steps):
        cfg(x, torch.full((1,), 1.0), MultiCond.single([cond]), [uncond])
    return unet.batches, cfg.skipped


def test_skip_early_cond_and_ngms_all_steps_skip_the_negative_pass() -> None:
    assert run_cfg(CFGPolicy()) == ([2, 2, 2, 2], set())
    assert run_cfg(CFGPolicy(skip_early_cond=0.5)) == ([1, 1, 1, 2], {"early"})
    assert run_cfg(CFGPolicy(s_min_uncond=5.0)) == ([2, 1, 2, 1], {"ngms"})
    assert run_cfg(CFGPolicy(s_min_uncond=5.0, s_min_uncond_all=True)) == ([1, 1, 1, 1], {"ngms"})


def test_pad_conds_v0_repeats_or_cuts_the_negative_prompt() -> None:
    seen: list[int] = []

    def unet(x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        seen.append(cond["crossattn"].shape[1])
        return x * 0
    cond = CondSchedule.constant({"crossattn": torch.ones(154, 8)})
    uncond = CondSchedule.constant({"crossattn": torch.arange(77.0)[:, None].repeat(1, 8)})
    cfg = CFGDenoiser(DiscreteDenoiser(unet, SCHED), policy=CFGPolicy(pad_v0=True))
    cfg(torch.ones(1, 4, 2, 2), torch.full((1,), 1.0), MultiCond.single([cond]), [uncond])
    assert seen == [154] and cfg.padded_cond_uncond_v0
    plain = CFGDenoiser(DiscreteDenoiser(unet, SCHED))
    seen.clear()
    plain(torch.ones(1, 4, 2, 2), torch.full((1,), 1.0), MultiCond.single([cond]), [uncond])
    assert seen == [154, 77] and not plain.padded_cond_uncond_v0


def test_dpmpp_sde_batch_determinism_switch() -> None:
    from modules.processing.sampling_glue import noise_sampler_for

    spec, _ = resolve_sampler("DPM++ SDE")
    sigmas = torch.tensor([10.0, 1.0, 0.0])
    x = torch.zeros(2, 4, 2, 2)
    one = noise_sampler_for(spec, x[:1], sigmas, None, [5])(torch.tensor(10.0), torch.tensor(1.0))  # type: ignore[arg-type]
    two = noise_sampler_for(spec, x, sigmas, None, [5, 6])(torch.tensor(10.0), torch.tensor(1.0))  # type: ignore[arg-type]
    assert torch.equal(one[0], two[0])  # per-image trees: an image does not depend on its batch
    torch.manual_seed(0)
    shared = noise_sampler_for(spec, x, sigmas, None, [5, 6], per_image_trees=False)(  # type: ignore[arg-type]
        torch.tensor(10.0), torch.tensor(1.0))
    assert not torch.equal(shared[0], two[0])


def test_img2img_background_color_setting() -> None:
    from modules.processing.img2img_init import background_color

    assert background_color({}) == (255, 255, 255)
    assert background_color({"img2img_background_color": "#102030"}) == (16, 32, 48)
    assert background_color({"img2img_background_color": "nonsense"}) == (255, 255, 255)
