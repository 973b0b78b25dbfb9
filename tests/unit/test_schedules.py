"""Sigma schedules: k-diffusion's get_sigmas_* as oracle where it has them, else values derived by hand from
A1111's formulas (documented per test), plus the discrete SD schedule and sigma <-> t conversion."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from test_samplers import load_kdiffusion_sampling

from modules.sampling import schedules as S
from modules.sampling.discrete import DiscreteSchedule, rescale_zero_terminal_snr, scaled_linear_alphas_cumprod

MODEL = DiscreteSchedule.sd_default()
LO, HI = float(MODEL.sigma_min), float(MODEL.sigma_max)


def test_sd_discrete_schedule_matches_diffusers_scaled_linear():
    from diffusers import DDPMScheduler

    ref = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    torch.testing.assert_close(scaled_linear_alphas_cumprod(), ref.alphas_cumprod.float(), atol=1e-6, rtol=1e-5)
    assert pytest.approx(0.0292, abs=1e-4) == LO and pytest.approx(14.6146, abs=1e-4) == HI


def test_sigma_t_roundtrip_and_interpolation():
    ts = torch.tensor([0.0, 1.0, 10.5, 500.25, 998.9, 999.0])
    torch.testing.assert_close(MODEL.sigma_to_t(MODEL.t_to_sigma(ts)), ts, atol=2e-3, rtol=0)
    # between two integer timesteps, log-sigma is linear in t
    mid = MODEL.t_to_sigma(torch.tensor(100.5))
    assert float(mid.log()) == pytest.approx(float((MODEL.sigmas[100].log() + MODEL.sigmas[101].log()) / 2), rel=1e-6)
    assert float(MODEL.sigma_to_t(torch.tensor(1e-4))) == 0.0  # clamped below the table
    assert float(MODEL.sigma_to_t(MODEL.sigmas[417], quantize=True)) == 417.0


def test_zero_terminal_snr_makes_the_last_alphabar_vanish():
    ac = rescale_zero_terminal_snr(MODEL.alphas_cumprod)
    assert float(ac[-1]) < 1e-7 and float(ac[0]) == pytest.approx(float(MODEL.alphas_cumprod[0]), rel=1e-5)


@pytest.mark.parametrize("n", [1, 2, 3, 20])
def test_karras_exponential_polyexponential_match_kdiffusion(n):
    K = load_kdiffusion_sampling()
    torch.testing.assert_close(S.karras_sigmas(n, LO, HI), K.get_sigmas_karras(n, LO, HI))
    torch.testing.assert_close(S.karras_sigmas(n, LO, HI, rho=3.0), K.get_sigmas_karras(n, LO, HI, rho=3.0))
    torch.testing.assert_close(S.exponential_sigmas(n, LO, HI), K.get_sigmas_exponential(n, LO, HI))
    torch.testing.assert_close(S.polyexponential_sigmas(n, LO, HI, 2.0), K.get_sigmas_polyexponential(n, LO, HI, 2.0))


def test_uniform_is_the_models_own_evenly_spaced_timesteps():
    sig = S.uniform_sigmas(4, MODEL)
    expected = [MODEL.t_to_sigma(torch.tensor(t)) for t in (999.0, 666.0, 333.0, 0.0)]
    torch.testing.assert_close(sig[:-1], torch.stack(expected).float())
    assert sig[-1] == 0


def test_sgm_uniform_and_normal_by_hand():
    # SGM Uniform: 5 points from t=999 to t=0 (step 249.75), the last dropped
    torch.testing.assert_close(S.sgm_uniform_sigmas(4, LO, HI, MODEL)[:-1],
                               MODEL.t_to_sigma(torch.tensor([999.0, 749.25, 499.5, 249.75])).float())
    # Normal: 4 points from t=999 to t=0 inclusive
    torch.testing.assert_close(S.normal_sigmas(4, LO, HI, MODEL)[:-1],
                               MODEL.t_to_sigma(torch.tensor([999.0, 666.0, 333.0, 0.0])).float())


def test_simple_and_ddim_pick_table_entries():
    # Simple, n=4: stride 250 from the top: t = 999, 749, 499, 249
    torch.testing.assert_close(S.simple_sigmas(4, MODEL), torch.cat([MODEL.sigmas[[999, 749, 499, 249]], torch.zeros(1)]))
    # DDIM, n=4: t = 1, 251, 501, 751 reversed
    torch.testing.assert_close(S.ddim_sigmas(4, MODEL), torch.cat([MODEL.sigmas[[751, 501, 251, 1]], torch.zeros(1)]))
    assert len(S.ddim_sigmas(7, MODEL)) == 9  # A1111 quirk: 1000 // 7 = 142 gives 8 timesteps


def test_kl_optimal_by_hand():
    n = 3
    expected = [math.tan((1 - i / n) * math.atan(HI) + i / n * math.atan(LO)) for i in range(n + 1)]
    torch.testing.assert_close(S.kl_optimal_sigmas(n, LO, HI), torch.tensor(expected, dtype=torch.float32))


def test_align_your_steps_tables_and_interpolation():
    torch.testing.assert_close(S.align_your_steps_sigmas(11), torch.tensor([*S.AYS_SD15, 0.0]))
    torch.testing.assert_close(S.align_your_steps_sigmas(11, is_sdxl=True), torch.tensor([*S.AYS_SDXL, 0.0]))
    six = S.align_your_steps_sigmas(6)
    # 6 points at table positions 0, 2, 4, 6, 8, 10 of the 11-entry table: log-linear interpolation hits them exactly
    torch.testing.assert_close(six[:-1], torch.tensor(S.AYS_SD15[::2]))
    # 21 points: every other one is the geometric mean of two neighbours
    t21 = S.align_your_steps_sigmas(21)
    assert float(t21[1]) == pytest.approx(math.sqrt(S.AYS_SD15[0] * S.AYS_SD15[1]), rel=1e-5)


def test_beta_schedule_by_hand():
    n = 5
    qs = stats.beta.ppf(1 - np.linspace(0, 1, n), 0.6, 0.6)
    expected = torch.tensor([*(LO + q * (HI - LO) for q in qs), 0.0], dtype=torch.float32)
    torch.testing.assert_close(S.beta_sigmas(n, LO, HI), expected)
    assert float(S.beta_sigmas(n, LO, HI)[0]) == pytest.approx(HI, rel=1e-6)


def test_scheduler_names_labels_and_defaults():
    names = [(s.name, s.label) for s in S.list_schedulers()]
    assert names == [
        ("automatic", "Automatic"), ("uniform", "Uniform"), ("karras", "Karras"), ("exponential", "Exponential"),
        ("polyexponential", "Polyexponential"), ("sgm_uniform", "SGM Uniform"), ("kl_optimal", "KL Optimal"),
        ("align_your_steps", "Align Your Steps"), ("simple", "Simple"), ("normal", "Normal"), ("ddim", "DDIM"),
        ("beta", "Beta"),
    ]
    assert S.find_scheduler("SGMUniform").name == "sgm_uniform"
    assert S.find_scheduler("karras").default_rho == 7.0
    assert S.find_scheduler("Polyexponential").default_rho == 1.0
    assert S.find_scheduler("nope") is None


def test_get_sigmas_automatic_overrides_and_discard():
    # Automatic with a sampler default -> that schedule; without -> the model's own sigmas
    torch.testing.assert_close(S.get_sigmas(5, "Automatic", MODEL, sampler_default="karras"), S.karras_sigmas(5, LO, HI))
    torch.testing.assert_close(S.get_sigmas(5, None, MODEL), S.uniform_sigmas(5, MODEL))
    # overrides: sigma_min / sigma_max / rho; 0 means "model default"
    torch.testing.assert_close(S.get_sigmas(5, "Karras", MODEL, sigma_min=0.1, sigma_max=10.0, rho=5.0),
                               S.karras_sigmas(5, 0.1, 10.0, 5.0))
    torch.testing.assert_close(S.get_sigmas(5, "karras", MODEL, sigma_min=0, rho=0), S.karras_sigmas(5, LO, HI))
    torch.testing.assert_close(S.get_sigmas(5, "karras", MODEL, use_old_karras_sigmas=True),
                               S.karras_sigmas(5, 0.1, 10.0))
    # discard: one more step computed, the penultimate sigma dropped
    full = S.karras_sigmas(6, LO, HI)
    torch.testing.assert_close(S.get_sigmas(5, "karras", MODEL, discard_penultimate=True),
                               torch.cat([full[:-2], full[-1:]]))
    with pytest.raises(ValueError, match="unknown schedule type"):
        S.get_sigmas(5, "Karas", MODEL)


@pytest.mark.parametrize("sched", [s.name for s in S.list_schedulers()])
@pytest.mark.parametrize("n", [1, 2, 3, 20])
def test_every_schedule_is_finite_and_non_increasing(sched, n):
    sig = S.get_sigmas(n, sched, MODEL)
    assert torch.isfinite(sig).all() and (sig >= 0).all()
    assert (sig[1:] <= sig[:-1] + 1e-6).all()


def test_unipc_time_uniform_grid():
    sig = S.unipc_sigmas(4, MODEL)
    # t_in = 999, 749.25, 499.5, 249.75, 0 with log sqrt(alphabar) interpolated between timesteps
    log_a = 0.5 * MODEL.alphas_cumprod.double().log()
    for got, t in zip(sig.tolist(), [999.0, 749.25, 499.5, 249.75, 0.0], strict=True):
        lo = math.floor(t)
        hi = min(lo + 1, 999)
        la = float(log_a[lo] + (t - lo) * (log_a[hi] - log_a[lo]))
        assert got == pytest.approx(math.sqrt(1 - math.exp(2 * la)) / math.exp(la), rel=1e-5)
    assert len(S.unipc_sigmas(5, MODEL, "logSNR")) == 6 and len(S.unipc_sigmas(5, MODEL, "time_quadratic")) == 6
