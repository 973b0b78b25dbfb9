"""Params ⇄ A1111 infotext fields (the ordered "Key: value" dict; text formatting lives in `modules.images`).

`generation_fields` builds the fields of one image in A1111 1.10's `create_infotext` order (reference §4.2):
core keys first, then the job's extra parameters (hires, refiner, masks, networks…) in insertion order, where an
extra key already in the core list keeps its position but takes the extra value; None values are omitted.
`params_from_fields` reads a parsed infotext back into params fields and the settings it implies (reference §4.3
step 8: Clip skip → CLIP_stop_at_last_layers, ENSD → eta_noise_seed_delta, RNG → randn_source, …).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modules.processing.params import INPAINTING_FILL_LABELS, GenerationParams, Img2ImgParams, Txt2ImgParams
from modules.settings import REGISTRY, OptionRegistry, SettingsError

VERSION = "sdwebui-v0.1.0"
"""Written as `Version:`; A1111's back-compat parser ignores versions it cannot read, i.e. treats ours as current."""

CORE_ORDER = (
    "Steps", "Sampler", "Schedule type", "CFG scale", "Image CFG scale", "Seed", "Face restoration", "Size",
    "Model hash", "Model", "FP8 weight", "Cache FP16 weight for LoRA", "VAE hash", "VAE", "Variation seed",
    "Variation seed strength", "Seed resize from", "Denoising strength", "Conditional mask weight", "Clip skip",
    "ENSD", "Token merging ratio", "Token merging ratio hr", "Init image hash", "RNG", "Tiling",
)

SETTING_FIELDS = {
    "Clip skip": "CLIP_stop_at_last_layers",
    "ENSD": "eta_noise_seed_delta",
    "RNG": "randn_source",
    "Emphasis": "emphasis",
    "Eta": "eta_ancestral",
    "Eta DDIM": "eta_ddim",
    "Schedule max sigma": "sigma_max",
    "Schedule min sigma": "sigma_min",
    "Schedule rho": "rho",
    "Noise multiplier": "initial_noise_multiplier",
    "Conditional mask weight": "inpainting_mask_weight",
    "Extra noise": "img2img_extra_noise",
    "Pad conds": "pad_cond_uncond",
    "VAE": "sd_vae",
    "Model hash": "sd_model_checkpoint",
}
"""Infotext keys that are settings in A1111 (pasting them goes to override_settings, not to params)."""


@dataclass
class ImageContext:
    """What one image's infotext needs beyond the params: resolved names, seeds and the engine's state."""

    seed: int
    subseed: int
    sampler: str
    schedule_label: str | None
    model_name: str | None
    model_hash: str | None = None
    vae_name: str | None = None
    vae_hash: str | None = None
    clip_skip: int = 1
    eta_noise_seed_delta: int = 0
    sampler_uses_ensd: bool = False
    randn_source: str = "GPU"
    tiling: bool = False
    face_restoration: str | None = None
    conditional_mask_weight: float | None = None
    image_cfg_scale: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    version: str | None = VERSION


def _hires_extras(p: Txt2ImgParams, hires_info: dict[str, Any]) -> dict[str, Any]:
    extras: dict[str, Any] = {"Denoising strength": p.denoising_strength, **hires_info}
    extras["Hires steps"] = p.hr_second_pass_steps or None
    extras["Hires upscaler"] = p.hr_upscaler
    extras["Hires checkpoint"] = p.hr_checkpoint_name
    extras["Hires sampler"] = p.hr_sampler_name
    extras["Hires schedule type"] = p.hr_scheduler
    if p.hr_prompt and p.hr_prompt != p.prompt:
        extras["Hires prompt"] = p.hr_prompt
    if p.hr_negative_prompt and p.hr_negative_prompt != p.negative_prompt:
        extras["Hires negative prompt"] = p.hr_negative_prompt
    return extras


def _img2img_extras(p: Img2ImgParams) -> dict[str, Any]:
    extras: dict[str, Any] = {"Denoising strength": p.denoising_strength}
    if p.mask is not None:
        blur = p.mask_blur if p.mask_blur is not None else p.mask_blur_x
        extras["Mask blur"] = blur or None
        extras["Mask mode"] = "Inpaint not masked" if p.inpainting_mask_invert else None
        extras["Masked content"] = INPAINTING_FILL_LABELS[p.inpainting_fill] if p.inpainting_fill != 1 else None
        if p.inpaint_full_res:
            extras["Inpaint area"] = "Only masked"
            extras["Masked area padding"] = p.inpaint_full_res_padding
    return extras


def generation_fields(p: GenerationParams, ctx: ImageContext, *, width: int, height: int,
                      hires_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ordered infotext fields of one image (None values dropped), A1111 1.10 order."""
    core: dict[str, Any] = {
        "Steps": p.steps,
        "Sampler": ctx.sampler,
        "Schedule type": ctx.schedule_label,
        "CFG scale": p.cfg_scale,
        "Image CFG scale": ctx.image_cfg_scale,
        "Seed": ctx.seed,
        "Face restoration": ctx.face_restoration,
        "Size": f"{width}x{height}",
        "Model hash": ctx.model_hash,
        "Model": ctx.model_name,
        "VAE hash": ctx.vae_hash,
        "VAE": ctx.vae_name,
        "Variation seed": ctx.subseed if p.subseed_strength else None,
        "Variation seed strength": p.subseed_strength or None,
        "Seed resize from": (f"{p.seed_resize_from_w}x{p.seed_resize_from_h}"
                             if p.seed_resize_from_w > 0 and p.seed_resize_from_h > 0 else None),
        "Conditional mask weight": ctx.conditional_mask_weight,
        "Clip skip": ctx.clip_skip if ctx.clip_skip > 1 else None,
        "ENSD": ctx.eta_noise_seed_delta if ctx.eta_noise_seed_delta and ctx.sampler_uses_ensd else None,
        "RNG": ctx.randn_source if ctx.randn_source != "GPU" else None,
        "Tiling": True if ctx.tiling else None,
    }
    extras: dict[str, Any] = {}
    if isinstance(p, Txt2ImgParams) and p.enable_hr:
        extras.update(_hires_extras(p, hires_info or {}))
    if isinstance(p, Img2ImgParams):
        extras.update(_img2img_extras(p))
    if p.refiner_checkpoint:
        extras["Refiner"] = p.refiner_checkpoint
        extras["Refiner switch at"] = p.refiner_switch_at
    extras.update(ctx.extra)
    ordered = {key: core.get(key) for key in CORE_ORDER}
    for key, value in extras.items():
        ordered[key] = value
    ordered["Version"] = ctx.version
    return {k: v for k, v in ordered.items() if v is not None}


_PARAM_KEYS: dict[str, tuple[str, type]] = {
    "Steps": ("steps", int), "Sampler": ("sampler_name", str), "Schedule type": ("scheduler", str),
    "CFG scale": ("cfg_scale", float), "Image CFG scale": ("image_cfg_scale", float), "Seed": ("seed", int),
    "Variation seed": ("subseed", int), "Variation seed strength": ("subseed_strength", float),
    "Seed resize from-1": ("seed_resize_from_w", int), "Seed resize from-2": ("seed_resize_from_h", int),
    "Size-1": ("width", int), "Size-2": ("height", int), "Denoising strength": ("denoising_strength", float),
    "Hires upscale": ("hr_scale", float), "Hires steps": ("hr_second_pass_steps", int),
    "Hires upscaler": ("hr_upscaler", str), "Hires resize-1": ("hr_resize_x", int),
    "Hires resize-2": ("hr_resize_y", int), "Hires checkpoint": ("hr_checkpoint_name", str),
    "Hires sampler": ("hr_sampler_name", str), "Hires schedule type": ("hr_scheduler", str),
    "Hires prompt": ("hr_prompt", str), "Hires negative prompt": ("hr_negative_prompt", str),
    "Refiner": ("refiner_checkpoint", str), "Refiner switch at": ("refiner_switch_at", float),
    "Mask blur": ("mask_blur", int), "Masked area padding": ("inpaint_full_res_padding", int),
}
_USE_SAME = {"Use same sampler", "Use same scheduler", "Use same checkpoint"}


def params_from_fields(fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parsed infotext (A1111 keys, Size split into Size-1/-2) → (params field values, settings overrides)."""
    params: dict[str, Any] = {}
    for key in ("Prompt", "Negative prompt"):
        if key in fields:
            params["prompt" if key == "Prompt" else "negative_prompt"] = str(fields[key])
    for key, (name, kind) in _PARAM_KEYS.items():
        if key not in fields or fields[key] in ("", None) or fields[key] in _USE_SAME:
            continue
        try:
            params[name] = kind(float(fields[key])) if kind is int else kind(fields[key])
        except (TypeError, ValueError):
            continue  # tolerant, like A1111: an unreadable value keeps the current one
    # A1111 paste field of enable_hr: "Denoising strength" and a hires key (the parser adds "Hires resize-1" 0 to
    # every infotext, so without the first condition every pasted txt2img infotext would turn hires fix on)
    if "Denoising strength" in fields and any(
            k in fields for k in ("Hires upscale", "Hires resize-1", "Hires steps", "Hires upscaler")):
        params["enable_hr"] = True
    if "Mask mode" in fields:
        params["inpainting_mask_invert"] = int(fields["Mask mode"] == "Inpaint not masked")
    if fields.get("Masked content") in INPAINTING_FILL_LABELS:
        params["inpainting_fill"] = INPAINTING_FILL_LABELS.index(fields["Masked content"])
    if "Inpaint area" in fields:
        params["inpaint_full_res"] = fields["Inpaint area"] == "Only masked"
    settings = {setting: fields[key] for key, setting in SETTING_FIELDS.items() if key in fields}
    return params, settings


def setting_labels(registry: OptionRegistry = REGISTRY) -> list[tuple[str, str]]:
    """(infotext label, setting key) pairs: every option declared with an infotext name, then the extra names of
    `SETTING_FIELDS` (A1111 `get_override_settings`: `opts.data_labels` infotext names +
    `infotext_to_setting_name_mapping`)."""
    pairs = [(info.infotext, info.key) for info in registry.values() if info.infotext]
    known = {label for label, _key in pairs}
    pairs += [(label, key) for label, key in SETTING_FIELDS.items() if label not in known and key in registry]
    return pairs


def override_settings_from_infotext(fields: Mapping[str, Any], settings: Any, *,
                                    checkpoint_title: Callable[[str], str | None] | None = None,
                                    current_checkpoint: str | None = None) -> dict[str, Any]:
    """Settings a pasted infotext changes, each cast to the setting's own type (A1111 `get_override_settings`).

    `fields` is a parsed infotext (A1111's missing-key defaults included, so "Clip skip: 1" is pasted when the text
    has none); `settings` gives `.registry` and `.get`. A value equal to the current setting is left out, as is
    one that does not read as the setting's type. `Model hash` → `sd_model_checkpoint` only when the setting
    `disable_weights_auto_swap` is off (A1111 default: on, the checkpoint is left alone) and only for a checkpoint
    that exists here (`checkpoint_title(hash)` → its title), unless it is already `current_checkpoint`."""
    registry = settings.registry
    out: dict[str, Any] = {}
    for label, key in setting_labels(registry):
        value = fields.get(label)
        if value is None or key in out:
            continue
        if key == "sd_model_checkpoint":
            if settings.get("disable_weights_auto_swap") or checkpoint_title is None:
                continue
            title = checkpoint_title(str(value))
            if title is not None and title != current_checkpoint:
                out[key] = title
            continue
        info = registry[key]
        text = value if isinstance(value, str) else str(value)
        if info.value_type == "bool" and text.strip().lower() not in ("true", "false", "1", "0"):
            text = "True"  # A1111 `cast_value`: bool(text), e.g. "Face restoration: CodeFormer" turns it on
        try:
            typed = info.cast(text)
        except SettingsError:
            continue  # tolerant, like A1111's paste: an unreadable value is not an override
        if typed != settings.get(key):
            out[key] = typed
    return out


def label_for_setting(key: str, registry: OptionRegistry = REGISTRY) -> str:
    """The infotext label a setting is shown under in the "Override settings" box (the key if it has none)."""
    return next((label for label, k in setting_labels(registry) if k == key), key)


def setting_for_label(label: str, registry: OptionRegistry = REGISTRY) -> str | None:
    """The setting key of an "Override settings" entry's label (a setting key is accepted as it is)."""
    found = next((k for lab, k in setting_labels(registry) if lab == label), None)
    return found or (label if label in registry else None)
