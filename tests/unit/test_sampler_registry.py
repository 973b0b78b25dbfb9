"""Sampler registry: A1111 names, aliases, legacy combined names, defaults and flags (a1111-features.md §6)."""

from __future__ import annotations

import pytest
import torch

from modules.sampling.discrete import DiscreteSchedule
from modules.sampling.registry import (
    UnknownSamplerError,
    display_schedule,
    final_latent_scale,
    initial_noise_scale,
    list_samplers,
    resolve_sampler,
    sampler_sigmas,
)
from modules.sampling.schedules import exponential_sigmas, karras_sigmas, timestep_sampler_sigmas

A1111_ORDER = [
    "DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE", "Euler a", "Euler",
    "LMS", "Heun", "DPM2", "DPM2 a", "DPM fast", "DPM adaptive", "Restart", "DDIM", "DDIM CFG++", "PLMS", "UniPC", "LCM",
]


def test_names_in_a1111_order_with_dpmpp_2m_first():
    assert [s.name for s in list_samplers()] == A1111_ORDER
    assert resolve_sampler(None)[0].name == "DPM++ 2M"


@pytest.mark.parametrize(("alias", "name"), [
    ("k_dpmpp_2m", "DPM++ 2M"), ("k_dpmpp_sde", "DPM++ SDE"), ("k_dpmpp_2m_sde", "DPM++ 2M SDE"),
    ("k_dpmpp_2m_sde_heun", "DPM++ 2M SDE Heun"), ("k_dpmpp_2s_a", "DPM++ 2S a"), ("k_dpmpp_3m_sde", "DPM++ 3M SDE"),
    ("k_euler_a", "Euler a"), ("k_euler_ancestral", "Euler a"), ("k_euler", "Euler"), ("k_lms", "LMS"),
    ("k_heun", "Heun"), ("k_dpm_2", "DPM2"), ("k_dpm_2_a", "DPM2 a"), ("k_dpm_fast", "DPM fast"),
    ("k_dpm_ad", "DPM adaptive"), ("restart", "Restart"), ("ddim", "DDIM"), ("ddim_cfgpp", "DDIM CFG++"),
    ("plms", "PLMS"), ("unipc", "UniPC"), ("k_lcm", "LCM"), ("euler A", "Euler a"), ("dpm++ 2m", "DPM++ 2M"),
])
def test_api_aliases_and_case_insensitive_names(alias, name):
    spec, schedule = resolve_sampler(alias)
    assert spec.name == name and schedule is None


@pytest.mark.parametrize(("legacy", "name", "schedule"), [
    ("DPM++ 2M Karras", "DPM++ 2M", "karras"), ("LMS Karras", "LMS", "karras"), ("DPM2 Karras", "DPM2", "karras"),
    ("DPM2 a Karras", "DPM2 a", "karras"), ("DPM++ 2S a Karras", "DPM++ 2S a", "karras"),
    ("DPM++ SDE Karras", "DPM++ SDE", "karras"), ("DPM++ 2M SDE Karras", "DPM++ 2M SDE", "karras"),
    ("DPM++ 2M SDE Exponential", "DPM++ 2M SDE", "exponential"),
    ("DPM++ 2M SDE Heun Karras", "DPM++ 2M SDE Heun", "karras"),
    ("DPM++ 2M SDE Heun Exponential", "DPM++ 2M SDE Heun", "exponential"),
    ("DPM++ 3M SDE Karras", "DPM++ 3M SDE", "karras"), ("DPM++ 3M SDE Exponential", "DPM++ 3M SDE", "exponential"),
    ("Euler a Exponential", "Euler a", "exponential"), ("Euler SGMUniform", "Euler", "sgm_uniform"),
    ("DDIM Align Your Steps", "DDIM", "align_your_steps"), ("k_dpmpp_2m_ka", "DPM++ 2M", "karras"),
    ("k_lms_ka", "LMS", "karras"), ("k_dpm_2_ka", "DPM2", "karras"), ("k_dpm_2_a_ka", "DPM2 a", "karras"),
    ("k_dpmpp_2s_a_ka", "DPM++ 2S a", "karras"), ("k_dpmpp_sde_ka", "DPM++ SDE", "karras"),
    ("k_dpmpp_2m_sde_ka", "DPM++ 2M SDE", "karras"), ("k_dpmpp_2m_sde_exp", "DPM++ 2M SDE", "exponential"),
])
def test_old_combined_names_split_into_sampler_and_schedule(legacy, name, schedule):
    spec, sched = resolve_sampler(legacy)
    assert (spec.name, sched) == (name, schedule)


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownSamplerError) as info:
        resolve_sampler("DPM++ 2M Karas")
    assert "DPM++ 2M" in str(info.value) and "Sampler not found" in str(info.value)
    with pytest.raises(UnknownSamplerError) as info:
        resolve_sampler("eulr a")
    assert "Euler a" in info.value.suggestions


def test_default_schedules_and_flags():
    specs = {s.name: s for s in list_samplers()}
    assert {n: s.default_schedule for n, s in specs.items() if s.default_schedule} == {
        "DPM++ 2M": "karras", "DPM++ SDE": "karras", "DPM++ 2M SDE": "exponential",
        "DPM++ 2M SDE Heun": "exponential", "DPM++ 2S a": "karras", "DPM++ 3M SDE": "exponential",
        "DPM2": "karras", "DPM2 a": "karras", "Restart": "karras",
    }
    assert {n for n, s in specs.items() if s.brownian_noise} == {"DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun",
                                                                  "DPM++ 3M SDE"}
    assert {n for n, s in specs.items() if s.discard_next_to_last_sigma} == {"DPM2", "DPM2 a", "DPM++ 3M SDE"}
    assert {n for n, s in specs.items() if s.second_order} == {"DPM++ SDE", "DPM++ 2S a", "Heun", "DPM2", "DPM2 a",
                                                                "Restart"}
    assert {n for n, s in specs.items() if s.uses_ensd} == {"Euler a", "DPM2 a", "DPM++ 2S a", "DPM fast",
                                                             "DPM adaptive"}
    assert specs["DPM++ 2M SDE Heun"].options["solver_type"] == "heun"
    assert specs["DDIM"].options["eta"] == 0.0 and specs["DDIM"].eta_setting == "eta_ddim"
    assert specs["Euler a"].options["eta"] == 1.0 and specs["Euler a"].eta_setting == "eta_ancestral"
    assert specs["Euler"].options["s_tmax"] == float("inf")
    assert specs["UniPC"].options == {"order": 3, "variant": "bh1", "lower_order_final": True}
    entry = specs["DPM++ 3M SDE"].api_entry()
    assert entry["aliases"] == ["k_dpmpp_3m_sde"] and entry["options"]["discard_next_to_last_sigma"] == "True"


def test_display_schedule_shows_automatic_for_the_sampler_default():
    spec, _ = resolve_sampler("DPM++ 2M")
    assert display_schedule(spec, "karras") == "Automatic"
    assert display_schedule(spec, "exponential") == "Exponential"
    assert display_schedule(spec, None) == "Automatic"


def test_sampler_sigmas_apply_defaults_discard_and_timestep_grids():
    model = DiscreteSchedule.sd_default()
    lo, hi = float(model.sigma_min), float(model.sigma_max)
    dpm2m = resolve_sampler("DPM++ 2M")[0]
    torch.testing.assert_close(sampler_sigmas(dpm2m, 10, "Automatic", model), karras_sigmas(10, lo, hi))
    dpm3m = resolve_sampler("DPM++ 3M SDE")[0]
    full = exponential_sigmas(11, lo, hi)
    torch.testing.assert_close(sampler_sigmas(dpm3m, 10, None, model), torch.cat([full[:-2], full[-1:]]))
    euler = resolve_sampler("Euler")[0]
    full = karras_sigmas(11, lo, hi)
    torch.testing.assert_close(sampler_sigmas(euler, 10, "karras", model, always_discard_next_to_last_sigma=True),
                               torch.cat([full[:-2], full[-1:]]))
    ddim = resolve_sampler("DDIM")[0]
    torch.testing.assert_close(sampler_sigmas(ddim, 10, "karras", model), timestep_sampler_sigmas(10, model))
    assert initial_noise_scale(ddim, hi) == pytest.approx((1 + hi * hi) ** 0.5)
    assert initial_noise_scale(euler, hi) == pytest.approx(hi)
    assert initial_noise_scale(euler, hi, sgm_noise_multiplier=True) == pytest.approx((1 + hi * hi) ** 0.5)
    assert final_latent_scale(euler, 0.0) == 1.0 and final_latent_scale(ddim, 1.0) == pytest.approx(2**-0.5)
