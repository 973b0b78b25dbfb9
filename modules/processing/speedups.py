"""Which token merging / Hypertile a pass runs with, and what the infotext says about it (A1111 behaviour).

Token merging (A1111 ``StableDiffusionProcessing.get_token_merging_ratio``, applied by ``apply_token_merging``
before sampling and again with ``for_hr=True`` before the hires pass):

* txt2img: ``p.token_merging_ratio or token_merging_ratio``; the hires pass
  ``p.token_merging_ratio_hr or token_merging_ratio_hr or`` the first-pass ratio;
* img2img: ``p.token_merging_ratio``, else ``token_merging_ratio`` when the job's override_settings set it, else
  ``token_merging_ratio_img2img or token_merging_ratio``;
* infotext "Token merging ratio" (the first-pass ratio, when not 0) and "Token merging ratio hr" (with hires fix,
  when its ratio is not 0).

Hypertile (A1111 ``extensions-builtin/hypertile``; seeded with the job's first seed):

* the U-Net tiles in the first pass (and img2img) with ``hypertile_enable_unet``, in the hires pass with
  ``hypertile_enable_unet_secondpass or hypertile_enable_unet``; the VAE with ``hypertile_enable_vae``;
* infotext "Hypertile U-Net: True" (or "Hypertile U-Net second pass: True" when only the second pass tiles), and
  "Hypertile VAE: True", each followed by its max depth / max tile size / swap size *when they differ from the
  defaults* (A1111 writes None, i.e. nothing, for default values).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from modules.models.speedups import HypertileConfig, TokenMergeConfig, unet_speedups, vae_hypertile
from modules.processing.conditioning import opt
from modules.settings import REGISTRY

_UNET_PARAMS = (("hypertile_max_depth_unet", "Hypertile U-Net max depth"),
                ("hypertile_max_tile_unet", "Hypertile U-Net max tile size"),
                ("hypertile_swap_size_unet", "Hypertile U-Net swap size"))
_VAE_PARAMS = (("hypertile_max_depth_vae", "Hypertile VAE max depth"),
               ("hypertile_max_tile_vae", "Hypertile VAE max tile size"),
               ("hypertile_swap_size_vae", "Hypertile VAE swap size"))


def _ratio(value: Any) -> float:
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0


def token_merging_ratio(params: Any, settings: Mapping[str, Any], kind: str, *, for_hr: bool = False) -> float:
    """The ToMe ratio of a pass (see the module docstring)."""
    own = _ratio(getattr(params, "token_merging_ratio", 0.0))
    base = _ratio(opt(settings, "token_merging_ratio", 0.0))
    if kind == "img2img":
        overridden = "token_merging_ratio" in (getattr(params, "override_settings", None) or {})
        return own or (base if overridden else 0.0) or _ratio(opt(settings, "token_merging_ratio_img2img", 0.0)) \
            or base
    first = own or base
    if for_hr:
        return (_ratio(getattr(params, "token_merging_ratio_hr", 0.0))
                or _ratio(opt(settings, "token_merging_ratio_hr", 0.0)) or first)
    return first


def _hires(params: Any) -> bool:
    return bool(getattr(params, "enable_hr", False)) or getattr(params, "firstpass_image", None) is not None


def _non_default(settings: Mapping[str, Any], keys: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, label in keys:
        value = opt(settings, key, REGISTRY[key].default)
        if value != REGISTRY[key].default:
            out[label] = value
    return out


def speedup_infotext(params: Any, settings: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The infotext fields of ToMe and Hypertile for the job (A1111 ``create_infotext`` and the Hypertile
    script's ``add_infotext``)."""
    fields: dict[str, Any] = {}
    ratio = token_merging_ratio(params, settings, kind)
    if ratio:
        fields["Token merging ratio"] = ratio
    hires = kind == "txt2img" and _hires(params)
    if hires:
        ratio_hr = token_merging_ratio(params, settings, kind, for_hr=True)
        if ratio_hr:
            fields["Token merging ratio hr"] = ratio_hr
    unet = bool(opt(settings, "hypertile_enable_unet", False))
    second = hires and bool(opt(settings, "hypertile_enable_unet_secondpass", False))
    if unet:
        fields["Hypertile U-Net"] = True
    elif second:
        fields["Hypertile U-Net second pass"] = True
    if unet or second:
        fields.update(_non_default(settings, _UNET_PARAMS))
    if opt(settings, "hypertile_enable_vae", False):
        fields["Hypertile VAE"] = True
        fields.update(_non_default(settings, _VAE_PARAMS))
    return fields


def _hypertile(settings: Mapping[str, Any], keys: tuple[tuple[str, str], ...], seed: int) -> HypertileConfig:
    depth, tile, swap = (int(opt(settings, key, REGISTRY[key].default)) for key, _ in keys)
    return HypertileConfig(max_depth=depth, max_tile=tile, swap_size=swap, seed=seed)


def pass_speedups(params: Any, settings: Mapping[str, Any], kind: str, seed: int, *, second_pass: bool = False
                  ) -> tuple[TokenMergeConfig | None, HypertileConfig | None]:
    """(ToMe, U-Net Hypertile) of one sampling pass; None for what is off."""
    ratio = token_merging_ratio(params, settings, kind, for_hr=second_pass)
    tile = bool(opt(settings, "hypertile_enable_unet", False))
    if second_pass:
        tile = tile or bool(opt(settings, "hypertile_enable_unet_secondpass", False))
    return (TokenMergeConfig(ratio) if ratio > 0 else None), (_hypertile(settings, _UNET_PARAMS, seed) if tile else None)


@contextmanager
def job_speedups(run: Any, model: Any) -> Iterator[None]:
    """Hypertile on ``model``'s VAE while a batch of ``run`` is processed (A1111 hooks the VAE for the whole job),
    and the ToMe / Hypertile infotext fields in ``run.extra_fields``; the UNet's speed-ups are installed per
    sampling pass (:func:`pass_speedups`, ``SamplingRun``)."""
    run.extra_fields.update(speedup_infotext(run.params, run.settings, run.kind))
    seed = int(run.seeds[0]) if run.seeds else 0
    vae = _hypertile(run.settings, _VAE_PARAMS, seed) if opt(run.settings, "hypertile_enable_vae", False) else None
    with vae_hypertile(model.vae, vae):
        yield


__all__ = ["job_speedups", "pass_speedups", "speedup_infotext", "token_merging_ratio", "unet_speedups"]
