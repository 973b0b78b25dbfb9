"""Normalisation of parsed infotexts: the defaults and backward-compatibility rules A1111 applies after parsing.

A1111 (`modules/infotext_utils.py::parse_generation_parameters`, `modules/infotext_versions.py`) fills keys that an
older infotext did not write with the value that was in force when it was made, so that pasting an old infotext
reproduces the old image.  These rules live here so that `infotext.py` stays about the text format itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import MutableMapping
from typing import Any

# Scheduler labels, internal names and aliases known to A1111 1.10 (`modules/sd_schedulers.py`).  An old infotext
# wrote the scheduler as a suffix of the sampler name ("DPM++ 2M Karras"); these are the suffixes recognised.
SCHEDULER_NAMES: dict[str, str] = {
    # label/name/alias -> label
    "Automatic": "Automatic", "automatic": "Automatic",
    "Uniform": "Uniform", "uniform": "Uniform",
    "Karras": "Karras", "karras": "Karras",
    "Exponential": "Exponential", "exponential": "Exponential",
    "Polyexponential": "Polyexponential", "polyexponential": "Polyexponential",
    "SGM Uniform": "SGM Uniform", "sgm_uniform": "SGM Uniform", "SGMUniform": "SGM Uniform",
    "KL Optimal": "KL Optimal", "kl_optimal": "KL Optimal",
    "Align Your Steps": "Align Your Steps", "align_your_steps": "Align Your Steps",
    "Simple": "Simple", "simple": "Simple",
    "Normal": "Normal", "normal": "Normal",
    "DDIM": "DDIM", "ddim": "DDIM",
    "Beta": "Beta", "beta": "Beta",
    "Turbo": "Turbo", "turbo": "Turbo",
    "Align Your Steps GITS": "Align Your Steps GITS", "align_your_steps_GITS": "Align Your Steps GITS",
    "Align Your Steps 11": "Align Your Steps 11", "align_your_steps_11": "Align Your Steps 11",
    "Align Your Steps 32": "Align Your Steps 32", "align_your_steps_32": "Align Your Steps 32",
}

# Default scheduler of each k-diffusion sampler in A1111 1.10 (`sd_samplers_kdiffusion.samplers_k_diffusion`
# options['scheduler']); "Automatic" resolves to this.  Samplers not listed use their own default sigmas.
SAMPLER_DEFAULT_SCHEDULER: dict[str, str] = {
    "DPM++ 2M": "karras", "DPM++ SDE": "karras", "DPM++ 2M SDE": "exponential",
    "DPM++ 2M SDE Heun": "exponential", "DPM++ 2S a": "karras", "DPM++ 3M SDE": "exponential",
    "DPM2": "karras", "DPM2 a": "karras", "Restart": "karras",
}

_SUFFIXES_LONGEST_FIRST = sorted(SCHEDULER_NAMES, key=len, reverse=True)


def split_sampler_scheduler(sampler: str) -> tuple[str, str | None]:
    """Split an old combined sampler name into (sampler, schedule-type label).

    A1111 before 1.9 had one sampler entry per schedule ("DPM++ 2M Karras", "DPM++ 2M SDE Exponential"); 1.9 split
    them and `sd_samplers.get_sampler_and_scheduler` strips a trailing " <scheduler>" from the name on paste.
    Returns the scheduler as None when the name has no such suffix ("Euler a", "DPM++ 2M SDE Heun").
    """
    for suffix in _SUFFIXES_LONGEST_FIRST:
        if sampler.endswith(" " + suffix) and len(sampler) > len(suffix) + 1:
            return sampler[: -(len(suffix) + 1)], SCHEDULER_NAMES[suffix]
    return sampler, None


def scheduler_for_filename(sampler: str, scheduler: str | None) -> str:
    """The scheduler text A1111 puts in `[scheduler]`/`[sampler_scheduler]` filename tokens.

    `images.get_scheduler_str`: "Automatic" is replaced by the sampler's default scheduler name, then the name is
    `str.capitalize()`d (so "Automatic" for Euler, "Karras" for DPM++ 2M).
    """
    name = scheduler or "Automatic"
    if name == "Automatic":
        name = SAMPLER_DEFAULT_SCHEDULER.get(sampler, "Automatic")
    return name.capitalize()


# ---------------------------------------------------------------------------------------------- versions

_VERSION_RE = re.compile(
    r"^v?(?P<release>\d+(?:\.\d+)*)(?:[-_.]?(?P<pre>a|alpha|b|beta|rc|c|pre|preview)[-_.]?(?P<pre_n>\d*))?"
    r"(?:-(?P<post>\d+))?$",
    re.IGNORECASE,
)


VersionKey = tuple[tuple[int, ...], tuple[int, int, int], int]
"""(release, pre-release rank, post-release number): compares like PEP 440 versions."""


def parse_version(text: str | None) -> VersionKey | None:
    """Parse an infotext `Version` into a sortable key, or None when it is not an A1111 version.

    Mirrors `infotext_versions.parse_version`: a text with two or more dashes is cut to its first two dash-separated
    parts ("v1.7.0-225-g1234" -> "v1.7.0-225"), then read as a PEP 440 version ("1.8.0-RC" is a pre-release of
    1.8.0, "v1.7.0-225" a post-release).  Forge versions such as "f2.0.1v1.10.1-previous-…" give None.
    """
    if not text:
        return None
    m = re.match(r"([^-]+-[^-]+)-.*", text)
    if m:
        text = m.group(1)
    m = _VERSION_RE.match(text.strip())
    if m is None:
        return None
    release = tuple(int(x) for x in m.group("release").split("."))
    release = release + (0,) * max(0, 3 - len(release))
    if m.group("pre"):
        kind = m.group("pre").lower()
        rank = {"a": 0, "alpha": 0, "b": 1, "beta": 1}.get(kind, 2)
        pre: tuple[int, int, int] = (-1, rank, int(m.group("pre_n") or 0))
    else:
        pre = (0, 0, 0)
    post = int(m.group("post")) if m.group("post") else -1
    return (release, pre, post)


def _known_version(text: str) -> VersionKey:
    """A version this module compares against (always a valid A1111 version)."""
    version = parse_version(text)
    if version is None:
        raise ValueError(f"not an A1111 version: {text!r}")
    return version


V160 = _known_version("1.6.0")
V170_TSNR = _known_version("v1.7.0-225")
V180 = _known_version("1.8.0")
V180_HR_STYLES = _known_version("1.8.0-139")


def apply_version_backcompat(res: MutableMapping[str, Any]) -> None:
    """Enable the compatibility options an infotext's `Version` implies (A1111 `infotext_versions.backcompat`).

    <1.6.0 with "[" in the prompt -> "Old prompt editing timelines"; <1.6.0 with DDIM/PLMS -> "Pad conds v0";
    <1.7.0-225 -> "Downcast alphas_cumprod"; <1.8.0 with a Refiner -> "Refiner switch by sampling steps".
    """
    ver = parse_version(res.get("Version"))
    if ver is None:
        return
    if ver < V160 and "[" in str(res.get("Prompt", "")):
        res["Old prompt editing timelines"] = True
    if ver < V160 and res.get("Sampler", "") in ("DDIM", "PLMS"):
        res["Pad conds v0"] = True
    if ver < V170_TSNR:
        res["Downcast alphas_cumprod"] = True
    if ver < V180 and res.get("Refiner"):
        res["Refiner switch by sampling steps"] = True


# ---------------------------------------------------------------------------------------------- hires fix

def old_hires_fix_first_pass_dimensions(width: int, height: int) -> tuple[int, int]:
    """First-pass size of the pre-1.0 hires fix: scale to ~512x512 pixels, round up to multiples of 64.

    (A1111 `processing.old_hires_fix_first_pass_dimensions`.)
    """
    scale = math.sqrt(512 * 512 / (width * height))
    return math.ceil(scale * width / 64) * 64, math.ceil(scale * height / 64) * 64


def restore_old_hires_fix_params(res: MutableMapping[str, Any], use_old_hires_fix_width_height: bool = False) -> None:
    """Convert the old "First pass size" into Size + "Hires resize" (A1111 `restore_old_hires_fix_params`).

    Old infotexts wrote the final size as Size and the first pass as "First pass size" (0x0 = automatic).
    """
    if use_old_hires_fix_width_height:
        hires_w, hires_h = _int(res.get("Hires resize-1", 0)), _int(res.get("Hires resize-2", 0))
        if hires_w and hires_h:
            res["Size-1"], res["Size-2"] = hires_w, hires_h
            return
    fp_w, fp_h = res.get("First pass size-1"), res.get("First pass size-2")
    if fp_w is None or fp_h is None:
        return
    fp_w, fp_h = _int(fp_w), _int(fp_h)
    width, height = _int(res.get("Size-1", 512)), _int(res.get("Size-2", 512))
    if fp_w == 0 or fp_h == 0:
        fp_w, fp_h = old_hires_fix_first_pass_dimensions(width, height)
    res["Size-1"], res["Size-2"] = fp_w, fp_h
    res["Hires resize-1"], res["Hires resize-2"] = width, height


def _int(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


# ---------------------------------------------------------------------------------------------- emphasis

_ATTENTION_RE = re.compile(r"\\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:")


def prompt_uses_emphasis(text: str) -> bool:
    """True when A1111's attention syntax would give some text a weight other than 1.0.

    A1111 sets "Emphasis: Original" on paste only if the prompt uses brackets (`parse_prompt_attention`): "(x)"
    multiplies by 1.1, "[x]" divides by 1.1, "(x:w)" sets w, unclosed brackets apply to the rest, "\\(" is a literal.
    """
    weights: list[float] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def scale(start: int, factor: float) -> None:
        for i in range(start, len(weights)):
            weights[i] *= factor

    for m in _ATTENTION_RE.finditer(text):
        token, weight = m.group(0), m.group(1)
        if token == "(":
            round_open.append(len(weights))
        elif token == "[":
            square_open.append(len(weights))
        elif weight is not None and round_open:
            scale(round_open.pop(), float(weight) if _is_float(weight) else 1.0)
        elif token == ")" and round_open:
            scale(round_open.pop(), 1.1)
        elif token == "]" and square_open:
            scale(square_open.pop(), 1 / 1.1)
        elif token.strip() and token.strip() != "BREAK":
            weights.append(1.0)
    for start in round_open:
        scale(start, 1.1)
    for start in square_open:
        scale(start, 1 / 1.1)
    return any(abs(w - 1.0) > 1e-12 for w in weights)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------- defaults

# Keys A1111 adds when an infotext lacks them: the value that was in force before the key was written.
MISSING_KEY_DEFAULTS: dict[str, Any] = {
    "Clip skip": "1",
    "Hires sampler": "Use same sampler",
    "Hires schedule type": "Use same scheduler",
    "Hires checkpoint": "Use same checkpoint",
    "Hires prompt": "",
    "Hires negative prompt": "",
    "Mask mode": "Inpaint masked",
    "Masked content": "original",
    "Inpaint area": "Whole picture",
    "Masked area padding": 32,
}

LATE_KEY_DEFAULTS: dict[str, Any] = {
    "RNG": "GPU",
    "Schedule type": "Automatic",
    "Schedule max sigma": 0,
    "Schedule min sigma": 0,
    "Schedule rho": 0,
    "VAE Encoder": "Full",
    "VAE Decoder": "Full",
    "FP8 weight": "Disable",
}


def apply_missing_defaults(res: MutableMapping[str, Any], *, use_old_hires_fix_width_height: bool = False) -> None:
    """Fill the keys A1111's `parse_generation_parameters` fills, in its order (see module docstring).

    Also splits old combined sampler names ("DPM++ 2M Karras" -> Sampler "DPM++ 2M", Schedule type "Karras"), for
    "Sampler" and "Hires sampler", unless the infotext names a schedule type itself.
    """
    for sampler_key, schedule_key in (("Sampler", "Schedule type"), ("Hires sampler", "Hires schedule type")):
        name = res.get(sampler_key)
        if isinstance(name, str):
            base, scheduler = split_sampler_scheduler(name)
            if scheduler is not None:
                res[sampler_key] = base
                res.setdefault(schedule_key, scheduler)
    for key, value in MISSING_KEY_DEFAULTS.items():
        res.setdefault(key, value)
    hypernet = res.get("Hypernet")
    if hypernet is not None:
        res["Prompt"] = f"{res.get('Prompt', '')}<hypernet:{hypernet}:{res.get('Hypernet strength', '1.0')}>"
    if "Hires resize-1" not in res:
        res["Hires resize-1"] = 0
        res["Hires resize-2"] = 0
    restore_old_hires_fix_params(res, use_old_hires_fix_width_height)
    for key, value in LATE_KEY_DEFAULTS.items():
        res.setdefault(key, value)
    if "Cache FP16 weight for LoRA" not in res and res["FP8 weight"] != "Disable":
        res["Cache FP16 weight for LoRA"] = False
    if "Emphasis" not in res and (
        prompt_uses_emphasis(str(res.get("Prompt", ""))) or prompt_uses_emphasis(str(res.get("Negative prompt", "")))
    ):
        res["Emphasis"] = "Original"
    res.setdefault("Refiner switch by sampling steps", False)
