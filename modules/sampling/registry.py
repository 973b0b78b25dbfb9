"""The sampler registry: A1111 display names, API aliases, legacy "sampler + schedule" names, per-sampler defaults.

Adding a sampler is a function plus a row in ``SAMPLERS`` (order = A1111 1.10's list; the first is the default).
Facts from A1111 1.10 (``sd_samplers_kdiffusion``, ``sd_samplers_timesteps``, ``sd_samplers_lcm``,
``sd_samplers_extra``) as summarised in ``shared/reference/a1111-features.md`` section 6.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from . import samplers_dpm_solver as dpm_solver
from . import samplers_dpmpp as dpmpp
from . import samplers_extra as extra
from . import samplers_karras as karras
from . import samplers_timestep as timestep
from .discrete import DiscreteSchedule
from .schedules import Scheduler, find_scheduler, get_sigmas, list_schedulers, timestep_sampler_sigmas, unipc_sigmas

Tensor = torch.Tensor
CHURN = {"s_churn": 0.0, "s_tmin": 0.0, "s_tmax": float("inf"), "s_noise": 1.0}
ANCESTRAL = {"eta": 1.0, "s_noise": 1.0}


@dataclass(frozen=True)
class SamplerSpec:
    """One sampler as the UI/API/processing see it.

    ``default_schedule``: the schedule "Automatic" means for it (None = the model's own sigmas).
    ``options``: keyword defaults A1111 passes (eta from ``eta_ancestral``/``eta_ddim``, churn, UniPC settings...).
    ``second_order``: two model calls per step (prompt-editing schedules count doubled steps).
    ``discard_next_to_last_sigma``: compute steps + 1 sigmas and drop the penultimate one.
    ``brownian_noise``: SDE sampler; pass a seeded Brownian-tree noise (``seed`` option).
    ``uses_ensd``: draws extra noise, so ENSD (eta noise seed delta) changes the image.
    ``eta_setting``: "eta_ancestral" (infotext "Eta") or "eta_ddim" ("Eta DDIM") when the sampler takes eta.
    ``timestep_schedule``: "ddim" / "unipc" for A1111's timestep samplers, which ignore the schedule type and work
    on VP-scaled latents (see :func:`initial_noise_scale` / :func:`final_latent_scale`).
    ``denoiser``: "default" or "lcm" (:class:`~modules.sampling.denoisers.LCMDenoiser`).
    ``cfg_scale_multiplier``: factor applied to the CFG scale (DDIM CFG++: 1/12.5).
    ``ignores_steps``: DPM adaptive picks its own steps.
    """

    name: str
    function: Callable[..., Tensor]
    aliases: tuple[str, ...] = ()
    default_schedule: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    second_order: bool = False
    discard_next_to_last_sigma: bool = False
    brownian_noise: bool = False
    uses_ensd: bool = False
    eta_setting: str | None = None
    timestep_schedule: str | None = None
    denoiser: str = "default"
    cfg_scale_multiplier: float = 1.0
    ignores_steps: bool = False

    def api_entry(self) -> dict[str, Any]:
        """``GET /sdapi/v1/samplers`` item: ``{name, aliases, options}`` (option values as strings, like A1111)."""
        flags = {
            "scheduler": self.default_schedule,
            "second_order": self.second_order,
            "discard_next_to_last_sigma": self.discard_next_to_last_sigma,
            "brownian_noise": self.brownian_noise,
            "uses_ensd": self.uses_ensd,
        }
        return {"name": self.name, "aliases": list(self.aliases),
                "options": {k: str(v) for k, v in flags.items() if v not in (None, False)}}


SAMPLERS: tuple[SamplerSpec, ...] = (
    SamplerSpec("DPM++ 2M", dpmpp.sample_dpmpp_2m, ("k_dpmpp_2m",), "karras"),
    SamplerSpec("DPM++ SDE", dpmpp.sample_dpmpp_sde, ("k_dpmpp_sde",), "karras", {**ANCESTRAL, "r": 0.5},
                second_order=True, brownian_noise=True, eta_setting="eta_ancestral"),
    SamplerSpec("DPM++ 2M SDE", dpmpp.sample_dpmpp_2m_sde, ("k_dpmpp_2m_sde",), "exponential",
                {**ANCESTRAL, "solver_type": "midpoint"}, brownian_noise=True, eta_setting="eta_ancestral"),
    SamplerSpec("DPM++ 2M SDE Heun", dpmpp.sample_dpmpp_2m_sde, ("k_dpmpp_2m_sde_heun",), "exponential",
                {**ANCESTRAL, "solver_type": "heun"}, brownian_noise=True, eta_setting="eta_ancestral"),
    SamplerSpec("DPM++ 2S a", dpmpp.sample_dpmpp_2s_ancestral, ("k_dpmpp_2s_a",), "karras", dict(ANCESTRAL),
                second_order=True, uses_ensd=True, eta_setting="eta_ancestral"),
    SamplerSpec("DPM++ 3M SDE", dpmpp.sample_dpmpp_3m_sde, ("k_dpmpp_3m_sde",), "exponential", dict(ANCESTRAL),
                discard_next_to_last_sigma=True, brownian_noise=True, eta_setting="eta_ancestral"),
    SamplerSpec("Euler a", karras.sample_euler_ancestral, ("k_euler_a", "k_euler_ancestral"), None, dict(ANCESTRAL),
                uses_ensd=True, eta_setting="eta_ancestral"),
    SamplerSpec("Euler", karras.sample_euler, ("k_euler",), None, dict(CHURN)),
    SamplerSpec("LMS", karras.sample_lms, ("k_lms",), None),
    SamplerSpec("Heun", karras.sample_heun, ("k_heun",), None, dict(CHURN), second_order=True),
    SamplerSpec("DPM2", karras.sample_dpm_2, ("k_dpm_2",), "karras", dict(CHURN), second_order=True,
                discard_next_to_last_sigma=True),
    SamplerSpec("DPM2 a", karras.sample_dpm_2_ancestral, ("k_dpm_2_a",), "karras", dict(ANCESTRAL),
                second_order=True, discard_next_to_last_sigma=True, uses_ensd=True, eta_setting="eta_ancestral"),
    SamplerSpec("DPM fast", dpm_solver.sample_dpm_fast, ("k_dpm_fast",), None, dict(ANCESTRAL), uses_ensd=True,
                eta_setting="eta_ancestral"),
    SamplerSpec("DPM adaptive", dpm_solver.sample_dpm_adaptive, ("k_dpm_ad",), None, dict(ANCESTRAL), uses_ensd=True,
                eta_setting="eta_ancestral", ignores_steps=True),
    SamplerSpec("Restart", extra.sample_restart, ("restart",), "karras", {"s_noise": 1.0}, second_order=True),
    SamplerSpec("DDIM", timestep.sample_ddim, ("ddim",), None, {"eta": 0.0}, eta_setting="eta_ddim",
                timestep_schedule="ddim"),
    SamplerSpec("DDIM CFG++", timestep.sample_ddim_cfgpp, ("ddim_cfgpp",), None, {"eta": 0.0},
                eta_setting="eta_ddim", timestep_schedule="ddim", cfg_scale_multiplier=1 / 12.5),
    SamplerSpec("PLMS", timestep.sample_plms, ("plms",), None, timestep_schedule="ddim"),
    SamplerSpec("UniPC", timestep.sample_unipc, ("unipc",), None,
                {"order": 3, "variant": "bh1", "lower_order_final": True}, timestep_schedule="unipc"),
    SamplerSpec("LCM", extra.sample_lcm, ("k_lcm",), None, denoiser="lcm"),
)

# Pre-1.9 names that carried the schedule (A1111 kept them as aliases): alias -> (sampler, schedule name).
LEGACY_ALIASES: dict[str, tuple[str, str]] = {
    "k_lms_ka": ("LMS", "karras"),
    "k_dpm_2_ka": ("DPM2", "karras"),
    "k_dpm_2_a_ka": ("DPM2 a", "karras"),
    "k_dpmpp_2s_a_ka": ("DPM++ 2S a", "karras"),
    "k_dpmpp_2m_ka": ("DPM++ 2M", "karras"),
    "k_dpmpp_sde_ka": ("DPM++ SDE", "karras"),
    "k_dpmpp_2m_sde_ka": ("DPM++ 2M SDE", "karras"),
    "k_dpmpp_2m_sde_exp": ("DPM++ 2M SDE", "exponential"),
    "k_dpmpp_2m_sde_heun_ka": ("DPM++ 2M SDE Heun", "karras"),
    "k_dpmpp_2m_sde_heun_exp": ("DPM++ 2M SDE Heun", "exponential"),
    "k_dpmpp_3m_sde_ka": ("DPM++ 3M SDE", "karras"),
    "k_dpmpp_3m_sde_exp": ("DPM++ 3M SDE", "exponential"),
}


class UnknownSamplerError(ValueError):
    """An unknown sampler name; the message lists the closest known names (A1111 API: 400 "Sampler not found")."""

    def __init__(self, name: str, suggestions: list[str]) -> None:
        hint = f"; did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        super().__init__(f"Sampler not found: {name!r}{hint} Known samplers: {', '.join(s.name for s in SAMPLERS)}")
        self.name = name
        self.suggestions = suggestions


def list_samplers() -> list[SamplerSpec]:
    """All samplers in A1111's order; the first (DPM++ 2M) is the default."""
    return list(SAMPLERS)


def _lookup(name: str) -> SamplerSpec | None:
    for spec in SAMPLERS:
        if spec.name == name:
            return spec
    low = name.strip().lower()
    for spec in SAMPLERS:
        if low == spec.name.lower() or low in (a.lower() for a in spec.aliases):
            return spec
    return None


def resolve_sampler(name: str | None) -> tuple[SamplerSpec, str | None]:
    """Name -> (sampler, schedule name or None).

    Order (A1111): exact name; case-insensitive name or alias; legacy combined alias (``k_dpmpp_2m_ka``); a
    trailing schedule label/name/alias split off ("DPM++ 2M Karras" -> DPM++ 2M + karras, "Euler a Exponential").
    None or "" -> the default sampler. Unknown -> :class:`UnknownSamplerError` with close matches.
    """
    if name is None or not name.strip():
        return SAMPLERS[0], None
    spec = _lookup(name)
    if spec is not None:
        return spec, None
    legacy = LEGACY_ALIASES.get(name.strip().lower())
    if legacy is not None:
        legacy_spec = _lookup(legacy[0])
        assert legacy_spec is not None
        return legacy_spec, legacy[1]
    low = name.strip().lower()
    suffixes: list[tuple[str, Scheduler]] = []
    for sched in list_schedulers():
        if sched.function is None:
            continue
        suffixes += [(s.lower(), sched) for s in (sched.label, sched.name, *sched.aliases)]
    for suffix, sched in sorted(suffixes, key=lambda item: -len(item[0])):
        if low.endswith(" " + suffix):
            base = _lookup(name.strip()[: -len(suffix)].strip())
            if base is not None:
                return base, sched.name
    candidates = [s.name for s in SAMPLERS] + [a for s in SAMPLERS for a in s.aliases] + list(LEGACY_ALIASES)
    by_lower = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(low, list(by_lower), n=3, cutoff=0.5)
    raise UnknownSamplerError(name, [by_lower[c] for c in close])


def display_schedule(spec: SamplerSpec, schedule: str | None) -> str:
    """The schedule label A1111 shows: "Automatic" when it is unset or equals the sampler's default."""
    sched = find_scheduler(schedule)
    if sched is None or sched.function is None or sched.name == spec.default_schedule:
        return "Automatic"
    return sched.label


def sampler_sigmas(
    spec: SamplerSpec,
    steps: int,
    schedule: str | None,
    model: DiscreteSchedule,
    *,
    always_discard_next_to_last_sigma: bool = False,
    automatic: Callable[[int], Tensor] | None = None,
    uni_pc_skip_type: str = "time_uniform",
    **overrides: Any,
) -> Tensor:
    """The sigmas a sampler runs on, with A1111's per-sampler rules.

    Timestep samplers use their own grids (DDIM/PLMS: :func:`timestep_sampler_sigmas`; UniPC:
    :func:`unipc_sigmas`) whatever the schedule type. Others go through :func:`get_sigmas` with the sampler's
    default schedule for Automatic and its discard rule (or the ``always_discard_next_to_last_sigma`` setting).
    ``automatic`` supplies the model's own schedule when it is not ``model.get_sigmas``: for LCM pass
    ``model=lcm_denoiser.schedule`` and ``automatic=lcm_denoiser.get_sigmas`` (A1111 uses the LCM table for both);
    ``overrides``: sigma_min, sigma_max, rho, beta_alpha, beta_beta, is_sdxl, use_old_karras_sigmas.
    """
    discard = spec.discard_next_to_last_sigma or always_discard_next_to_last_sigma
    if spec.timestep_schedule == "ddim":
        return timestep_sampler_sigmas(steps, model, discard_penultimate=discard)
    if spec.timestep_schedule == "unipc":
        return unipc_sigmas(steps + 1 if discard else steps, model, uni_pc_skip_type)
    return get_sigmas(steps, schedule, model, sampler_default=spec.default_schedule, discard_penultimate=discard,
                      automatic=automatic, **overrides)


def initial_noise_scale(spec: SamplerSpec, sigma_max: Tensor | float, sgm_noise_multiplier: bool = False) -> float:
    """Factor for the unit initial noise of txt2img: ``sigma_max`` (k-diffusion), ``sqrt(1 + sigma_max^2)`` for
    A1111's timestep samplers (whose VP latent starts as the raw noise) and with the "SGM noise multiplier" option."""
    s = float(sigma_max)
    return (1 + s * s) ** 0.5 if spec.timestep_schedule or sgm_noise_multiplier else s


def final_latent_scale(spec: SamplerSpec, sigma_last: Tensor | float) -> float:
    """Factor for the sampler's output: A1111's timestep samplers return the VP latent ``x * sqrt(alphabar)`` at
    their last timestep; every other sampler returns x unchanged."""
    s = float(sigma_last)
    return 1 / (1 + s * s) ** 0.5 if spec.timestep_schedule else 1.0
