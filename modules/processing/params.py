"""The one parameter schema for every job kind: UI, API, infotext and X/Y/Z all read and write these.

Field names are A1111's `StableDiffusionProcessing*` / API field names (reference §4.1) so that API clients,
scripts and pasted infotexts map onto them by name. Defaults are A1111's processing-class defaults (`steps` 50,
`sampler_name` None → resolved by the caller); the UI and the API layer state their own defaults where A1111's
differ (UI: 20 steps and "DPM++ 2M"; API: `sampler_index` "Euler").

Each field carries metadata: bounds (`ge`/`le`) checked by `validate_params`, the infotext label when the field is
written under one fixed label, and a one-line description used by the API schema.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

MAX_SEED = 2**63 - 1
"""Seeds are 64-bit in torch; A1111 draws random ones below 4294967294 but accepts any larger value."""


class ParamError(ValueError):
    """A parameter is out of range or of the wrong kind; `field` names it for the UI notice or HTTP 422."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def param(default: Any = None, *, ge: float | None = None, le: float | None = None, label: str | None = None,
          doc: str = "", factory: Any = None) -> Any:
    """A dataclass field with schema metadata (bounds, infotext label, description)."""
    metadata = {"ge": ge, "le": le, "label": label, "doc": doc}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class GenerationParams:
    """Fields shared by txt2img and img2img (A1111 `StableDiffusionProcessing`)."""

    prompt: str = param("", doc="Prompt (A1111 syntax: emphasis, editing, alternation, AND, BREAK, extra networks)")
    negative_prompt: str = param("", doc="Negative prompt")
    styles: list[str] = param(factory=list, doc="Names of styles from styles.csv applied to the prompts")
    seed: int = param(-1, ge=-1, le=MAX_SEED, label="Seed", doc="-1 picks a random seed")
    subseed: int = param(-1, ge=-1, le=MAX_SEED, label="Variation seed", doc="Variation seed; -1 random")
    subseed_strength: float = param(0.0, ge=0.0, le=1.0, label="Variation seed strength")
    seed_resize_from_h: int = param(-1, ge=-1, le=8192, doc="Resize seed from height; <= 0 disables")
    seed_resize_from_w: int = param(-1, ge=-1, le=8192, doc="Resize seed from width; <= 0 disables")
    sampler_name: str | None = param(None, label="Sampler", doc="Sampler name or alias; None = the caller's default")
    scheduler: str | None = param(None, label="Schedule type", doc="Schedule type name or label; None = Automatic")
    batch_size: int = param(1, ge=1, le=64, doc="Images per batch")
    n_iter: int = param(1, ge=1, le=1000, doc="Batch count")
    steps: int = param(50, ge=1, le=1000, label="Steps")
    cfg_scale: float = param(7.0, ge=0.0, le=100.0, label="CFG scale")
    width: int = param(512, ge=64, le=8192, doc="Image width; rounded down to a multiple of 8")
    height: int = param(512, ge=64, le=8192, doc="Image height; rounded down to a multiple of 8")
    restore_faces: bool | None = param(None, doc="None = the face_restoration setting")
    tiling: bool | None = param(None, doc="Seamless tiling; None = the tiling setting")
    do_not_save_samples: bool = param(False)
    do_not_save_grid: bool = param(False)
    eta: float | None = param(None, ge=0.0, le=10.0, doc="Ancestral eta; None = setting")
    s_min_uncond: float | None = param(None, ge=0.0, le=100.0)
    s_churn: float | None = param(None, ge=0.0, le=100.0, label="Sigma churn")
    s_tmax: float | None = param(None, ge=0.0, le=1e4, label="Sigma tmax")
    s_tmin: float | None = param(None, ge=0.0, le=1e4, label="Sigma tmin")
    s_noise: float | None = param(None, ge=0.0, le=10.0, label="Sigma noise")
    override_settings: dict[str, Any] = param(factory=dict, doc="Settings applied to this job only")
    override_settings_restore_afterwards: bool = param(True)
    refiner_checkpoint: str | None = param(None, label="Refiner", doc="Refiner checkpoint title or name")
    refiner_switch_at: float | None = param(None, ge=0.0, le=1.0, label="Refiner switch at")
    disable_extra_networks: bool = param(False)
    comments: dict[str, Any] | None = param(None)
    script_name: str | None = param(None, doc="Title of a selectable script")
    script_args: list[Any] = param(factory=list, doc="The selectable script's arguments, positional")
    alwayson_scripts: dict[str, Any] = param(factory=dict, doc='{"title": {"args": [...]}} for always-on scripts')


@dataclass
class Txt2ImgParams(GenerationParams):
    """txt2img with hires fix (A1111 `StableDiffusionProcessingTxt2Img`, reference §8)."""

    enable_hr: bool = param(False, doc="Hires. fix")
    denoising_strength: float = param(0.75, ge=0.0, le=1.0, label="Denoising strength")
    firstphase_width: int = param(0, ge=0, le=8192, doc="Legacy first pass width (old hires fix)")
    firstphase_height: int = param(0, ge=0, le=8192, doc="Legacy first pass height (old hires fix)")
    hr_scale: float = param(2.0, ge=1.0, le=16.0, label="Hires upscale")
    hr_upscaler: str | None = param(None, label="Hires upscaler")
    hr_second_pass_steps: int = param(0, ge=0, le=1000, label="Hires steps", doc="0 = same as steps")
    hr_resize_x: int = param(0, ge=0, le=8192)
    hr_resize_y: int = param(0, ge=0, le=8192)
    hr_checkpoint_name: str | None = param(None, label="Hires checkpoint")
    hr_sampler_name: str | None = param(None, label="Hires sampler")
    hr_scheduler: str | None = param(None, label="Hires schedule type")
    hr_prompt: str = param("", label="Hires prompt")
    hr_negative_prompt: str = param("", label="Hires negative prompt")
    firstpass_image: Any = param(None, doc="Run only the hires pass on this image (the ✨ button)")


@dataclass
class Img2ImgParams(GenerationParams):
    """img2img and inpainting (A1111 `StableDiffusionProcessingImg2Img`, reference §3.3)."""

    init_images: list[Any] = param(factory=list, doc="Initial images (PIL)")
    resize_mode: int = param(0, ge=0, le=3, doc="0 just resize, 1 crop and resize, 2 resize and fill, 3 latent")
    denoising_strength: float = param(0.75, ge=0.0, le=1.0, label="Denoising strength")
    image_cfg_scale: float | None = param(None, ge=0.0, le=100.0, label="Image CFG scale")
    mask: Any = param(None, doc="Inpainting mask (PIL); white = inpaint")
    mask_blur_x: int = param(4, ge=0, le=256)
    mask_blur_y: int = param(4, ge=0, le=256)
    mask_blur: int | None = param(None, ge=0, le=256, label="Mask blur", doc="Sets both mask_blur_x and _y")
    mask_round: bool = param(True)
    inpainting_fill: int = param(0, ge=0, le=3, doc="0 fill, 1 original, 2 latent noise, 3 latent nothing")
    inpaint_full_res: bool = param(True, doc="True = inpaint area 'Only masked'")
    inpaint_full_res_padding: int = param(0, ge=0, le=1024, label="Masked area padding")
    inpainting_mask_invert: int = param(0, ge=0, le=1, doc="1 = inpaint not masked")
    initial_noise_multiplier: float | None = param(None, ge=0.0, le=10.0, label="Noise multiplier")
    latent_mask: Any = param(None)


INPAINTING_FILL_LABELS = ("fill", "original", "latent noise", "latent nothing")
RESIZE_MODE_LABELS = ("Just resize", "Crop and resize", "Resize and fill", "Just resize (latent upscale)")


def field_metadata(params_type: type) -> dict[str, dict[str, Any]]:
    """Metadata of every field of a params dataclass, by field name."""
    return {f.name: dict(f.metadata) for f in dataclasses.fields(params_type)}


MAX_PROMPT_CHARS = 65536
"""Longest prompt text accepted (A1111 has no limit; 64 k characters is ~15,000 CLIP tokens, far beyond any real
prompt, and keeps one request from occupying the worker for minutes while every other job waits)."""
PROMPT_FIELDS = ("prompt", "negative_prompt", "hr_prompt", "hr_negative_prompt")


def _check_text(name: str, value: object) -> None:
    if not isinstance(value, str):
        return
    if len(value) > MAX_PROMPT_CHARS:
        raise ParamError(name, f"is {len(value)} characters long; at most {MAX_PROMPT_CHARS} are accepted")
    if "\x00" in value:
        raise ParamError(name, "contains a NUL character (\\x00)")


def validate_params(params: GenerationParams) -> None:
    """Check types and bounds of every field; raise `ParamError` naming the first bad field. Non-finite numbers
    (`1e309` parses as infinity, NaN) are refused in every numeric field, bounded or not."""
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if value is None:
            continue
        if f.name in PROMPT_FIELDS:
            _check_text(f.name, value)
        if isinstance(value, float) and not math.isfinite(value):
            raise ParamError(f.name, f"must be a finite number, got {value}")
        lo, hi = f.metadata.get("ge"), f.metadata.get("le")
        if lo is None and hi is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(f.name, f"expected a number, got {type(value).__name__}")
        if value != value:  # NaN
            raise ParamError(f.name, "is not a number (NaN)")
        if lo is not None and value < lo:
            raise ParamError(f.name, f"must be >= {lo}, got {value}")
        if hi is not None and value > hi:
            raise ParamError(f.name, f"must be <= {hi}, got {value}")
    if params.width * params.height * params.batch_size > 8192 * 8192:
        raise ParamError("width", f"{params.width}x{params.height} x batch {params.batch_size} is too many pixels")


def rounded_size(width: int, height: int) -> tuple[int, int, str | None]:
    """Round a size down to multiples of 8 as A1111 does (the latent is 1/8 of the image), with a notice if changed.

    A1111's UI sliders step by 8 and the API floors `width // 8 * 8` through the latent shape; any other size would
    give "Sizes of tensors must match" in the UNet skip connections.
    """
    w, h = max(8, width - width % 8), max(8, height - height % 8)
    notice = None if (w, h) == (width, height) else f"size {width}x{height} rounded to {w}x{h} (multiples of 8)"
    return w, h, notice
