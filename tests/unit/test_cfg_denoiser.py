"""CFG denoiser and the eps/v wrappers: batching, AND weights, prompt-editing schedules, pix2pix image CFG, hooks.

Expected values are computed by hand from the formulas (A1111 ``combine_denoised``; Brooks et al. 2023 eq. 3) by
calling the inner model on each conditioning separately.
"""

from __future__ import annotations

import pytest
import torch

from modules.sampling.cfg_denoiser import CFGDenoiser, CFGHooks, CFGPolicy
from modules.sampling.conditioning import CondSchedule, MultiCond, ScheduledCond, WeightedCond
from modules.sampling.denoisers import DiscreteDenoiser
from modules.sampling.discrete import DiscreteSchedule
from modules.sampling.samplers_karras import sample_euler, sample_heun

SCHED = DiscreteSchedule.sd_default()


class ToyUNet:
    """eps = tanh(x) * mean(crossattn) + 0.1 * mean(vector) + 0.05 * concat[:, :4] + t/1000; records its calls."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        self.calls.append({"batch": x.shape[0], "tokens": cond["crossattn"].shape[1], "concat": cond.get("concat")})
        scale = cond["crossattn"].mean(dim=(1, 2)).reshape(-1, 1, 1, 1)
        out = torch.tanh(x) * scale + t.reshape(-1, 1, 1, 1) / 1000
        if "vector" in cond:
            out = out + 0.1 * cond["vector"].mean(dim=1).reshape(-1, 1, 1, 1)
        if "concat" in cond:
            out = out + 0.05 * cond["concat"][:, :4]
        return out


def c(value: float, tokens: int = 77, vector: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(int(value * 1000) % 10007)
    cond = {"crossattn": value + 0.1 * torch.randn(tokens, 8, generator=g)}
    if vector:
        cond["vector"] = torch.randn(16, generator=g)
    return cond


def const(value: float, **kw) -> CondSchedule:
    return CondSchedule.constant(c(value, **kw))


def latents(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(batch, 4, 3, 3, generator=torch.Generator().manual_seed(1)) * 3
    return x, torch.full((batch,), float(SCHED.sigmas[600]))


def stack(*conds: dict) -> dict:
    return {k: torch.stack([cd[k] for cd in conds]) for k in conds[0]}


@pytest.mark.parametrize("vector", [False, True])
def test_batched_equals_split(vector):
    x, sigma = latents()
    cond = MultiCond.single([const(0.5, vector=vector), const(0.9, vector=vector)])
    uncond = [const(0.1, vector=vector), const(0.2, vector=vector)]
    unet_a, unet_b = ToyUNet(), ToyUNet()
    batched = CFGDenoiser(DiscreteDenoiser(unet_a, SCHED))(x, sigma, cond, uncond, cond_scale=7.0)
    split = CFGDenoiser(DiscreteDenoiser(unet_b, SCHED), policy=CFGPolicy(batch_cond_uncond=False))(
        x, sigma, cond, uncond, cond_scale=7.0)
    torch.testing.assert_close(batched, split)
    assert [call["batch"] for call in unet_a.calls] == [4]
    assert [call["batch"] for call in unet_b.calls] == [2, 2]


def test_cfg_and_weights_follow_a1111_formula():
    x, sigma = latents()
    inner = DiscreteDenoiser(ToyUNet(), SCHED)
    cond = MultiCond((
        (WeightedCond(const(0.5), 0.7), WeightedCond(const(1.3), 0.3)),
        (WeightedCond(const(0.9), 1.0),),
    ))
    uncond = [const(0.1), const(0.2)]
    got = CFGDenoiser(inner)(x, sigma, cond, uncond, cond_scale=6.0)

    def d(i: int, value: float) -> torch.Tensor:
        return inner(x[i : i + 1], sigma[i : i + 1], cond=stack(c(value)))

    u0, u1 = d(0, 0.1), d(1, 0.2)
    expected0 = u0 + (d(0, 0.5) - u0) * 0.7 * 6.0 + (d(0, 1.3) - u0) * 0.3 * 6.0
    expected1 = u1 + (d(1, 0.9) - u1) * 6.0
    torch.testing.assert_close(got, torch.cat([expected0, expected1]), atol=1e-5, rtol=1e-5)


def test_prompt_editing_switches_at_the_right_step():
    schedule = CondSchedule((ScheduledCond(2, c(0.3)), ScheduledCond(5, c(0.6)), ScheduledCond(9, c(0.9))))
    assert [round(float(schedule.at(s)["crossattn"].mean()), 1) for s in range(12)] == \
        [0.3, 0.3, 0.3, 0.6, 0.6, 0.6, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
    seen: list[float] = []
    hooks = CFGHooks(on_cfg_denoiser=[lambda p: seen.append(round(float(p.text_cond["crossattn"].mean()), 1))])
    x, _ = latents(1)
    sigmas = torch.linspace(10, 0, 8)
    cfg = CFGDenoiser(DiscreteDenoiser(ToyUNet(), SCHED), hooks=hooks)
    extra = {"cond": MultiCond.single([schedule]), "uncond": [const(0.1)], "cond_scale": 5.0}
    sample_euler(cfg, x, sigmas, extra_args=extra)
    assert seen == [0.3, 0.3, 0.3, 0.6, 0.6, 0.6, 0.9]
    assert cfg.step == 7
    # second-order samplers advance the counter once per model call (A1111)
    cfg2 = CFGDenoiser(DiscreteDenoiser(ToyUNet(), SCHED))
    sample_heun(cfg2, x, sigmas[:4], extra_args=extra)
    assert cfg2.step == 6


def test_hooks_can_change_inputs_and_outputs():
    x, sigma = latents()
    inner = DiscreteDenoiser(ToyUNet(), SCHED)
    cond, uncond = MultiCond.single([const(0.5), const(0.6)]), [const(0.1), const(0.1)]
    plain = CFGDenoiser(inner)(x, sigma, cond, uncond, cond_scale=3.0)
    seen_rows: list[int] = []

    def double_input(p) -> None:
        p.x = p.x * 2

    hooks = CFGHooks(on_cfg_denoiser=[double_input], on_cfg_denoised=[lambda p: seen_rows.append(p.x.shape[0])],
                     on_cfg_after_cfg=[lambda p: setattr(p, "x", p.x + 1)])
    hooked = CFGDenoiser(inner, hooks=hooks)(x, sigma, cond, uncond, cond_scale=3.0)
    expected = CFGDenoiser(inner)(x * 2, sigma, cond, uncond, cond_scale=3.0) + 1
    torch.testing.assert_close(hooked, expected)
    assert seen_rows == [4] and not torch.allclose(hooked, plain)


def test_instruct_pix2pix_three_way_image_cfg():
    x, sigma = latents()
    image = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(9))
    unet = ToyUNet()
    inner = DiscreteDenoiser(unet, SCHED)
    cond, uncond = MultiCond.single([const(0.5), const(0.7)]), [const(0.1), const(0.1)]
    got = CFGDenoiser(inner, image_cfg_scale=1.5)(x, sigma, cond, uncond, cond_scale=7.5, image_cond=image)
    assert unet.calls[0]["batch"] == 6 and torch.equal(unet.calls[0]["concat"][4:], torch.zeros(2, 4, 3, 3))

    def d(text: float, img: torch.Tensor, i: int) -> torch.Tensor:
        return inner(x[i : i + 1], sigma[i : i + 1], cond={**stack(c(text)), "concat": img[i : i + 1]})

    zero = torch.zeros_like(image)
    for i, text in enumerate((0.5, 0.7)):
        full, img_only, none = d(text, image, i), d(0.1, image, i), d(0.1, zero, i)
        expected = none + 7.5 * (full - img_only) + 1.5 * (img_only - none)
        torch.testing.assert_close(got[i : i + 1], expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="AND is not supported"):
        CFGDenoiser(inner, image_cfg_scale=1.5)(
            x[:1], sigma[:1], MultiCond(((WeightedCond(const(0.5)), WeightedCond(const(0.6))),)), [const(0.1)],
            image_cond=image[:1])


def test_different_token_counts_split_or_pad():
    x, sigma = latents(1)
    cond, uncond = MultiCond.single([const(0.5, tokens=154)]), [const(0.1, tokens=77)]
    unet = ToyUNet()
    split = CFGDenoiser(DiscreteDenoiser(unet, SCHED))(x, sigma, cond, uncond)
    assert [(call["batch"], call["tokens"]) for call in unet.calls] == [(1, 154), (1, 77)]
    unet2 = ToyUNet()
    padded_cfg = CFGDenoiser(DiscreteDenoiser(unet2, SCHED), policy=CFGPolicy(pad_with=torch.zeros(77, 8)))
    padded = padded_cfg(x, sigma, cond, uncond)
    assert [(call["batch"], call["tokens"]) for call in unet2.calls] == [(2, 154)]
    assert padded_cfg.padded_cond_uncond and torch.isfinite(padded).all() and torch.isfinite(split).all()


def test_s_min_uncond_skips_uncond_on_odd_steps_and_cfgpp_keeps_uncond():
    x, sigma = latents(1)
    unet = ToyUNet()
    cfg = CFGDenoiser(DiscreteDenoiser(unet, SCHED), policy=CFGPolicy(s_min_uncond=100.0))
    for _ in range(3):
        cfg(x, sigma, MultiCond.single([const(0.5)]), [const(0.1)])
    assert [call["batch"] for call in unet.calls] == [2, 1, 2]
    inner = DiscreteDenoiser(ToyUNet(), SCHED)
    cfgpp = CFGDenoiser(inner, cond_scale_multiplier=1 / 12.5)
    out = cfgpp(x, sigma, MultiCond.single([const(0.5)]), [const(0.1)], cond_scale=12.5)
    u = inner(x, sigma, cond=stack(c(0.1)))
    torch.testing.assert_close(cfgpp.last_uncond_denoised, u)
    torch.testing.assert_close(out, inner(x, sigma, cond=stack(c(0.5))), atol=1e-5, rtol=1e-5)  # scale 12.5/12.5 = 1


def test_eps_and_v_wrappers_recover_x0():
    """Karras et al. 2022 Table 1 preconditioning: an exact eps- or v-model must give back the true x0."""
    g = torch.Generator().manual_seed(5)
    x0, eps = torch.randn(3, 4, 2, 2, generator=g), torch.randn(3, 4, 2, 2, generator=g)
    t_true = torch.tensor([10.0, 500.0, 990.0])
    sigma = SCHED.t_to_sigma(t_true).float()
    s = sigma.reshape(-1, 1, 1, 1)
    x = x0 + s * eps
    alpha, sigma_vp = 1 / (1 + s**2) ** 0.5, s / (1 + s**2) ** 0.5
    seen_t: list[torch.Tensor] = []

    def eps_model(x_in: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        seen_t.append(t)
        torch.testing.assert_close(x_in, alpha * x0 + sigma_vp * eps)  # c_in x is the VP latent
        return eps

    def v_model(x_in: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        return alpha * eps - sigma_vp * x0  # Salimans & Ho 2022

    torch.testing.assert_close(DiscreteDenoiser(eps_model, SCHED)(x, sigma), x0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(DiscreteDenoiser(v_model, SCHED, prediction="v")(x, sigma), x0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(seen_t[0], t_true, atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="prediction"):
        DiscreteDenoiser(eps_model, SCHED, prediction="x0")


def test_cond_schedule_validation_and_batch_padding():
    with pytest.raises(ValueError, match="sorted"):
        CondSchedule((ScheduledCond(5, c(0.1)), ScheduledCond(2, c(0.2))))
    with pytest.raises(ValueError, match="at least one"):
        CondSchedule(())
    # images with prompts of different chunk counts: the shorter crossattn repeats its last token
    x, sigma = latents()
    unet = ToyUNet()
    CFGDenoiser(DiscreteDenoiser(unet, SCHED))(x, sigma, MultiCond.single([const(0.5, tokens=154), const(0.6)]),
                                               [const(0.1, tokens=154), const(0.1, tokens=154)])
    assert [(call["batch"], call["tokens"]) for call in unet.calls] == [(4, 154)]
