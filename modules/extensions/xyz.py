"""X/Y/Z plot logic without UI or pipeline: value parsing, axis types, applying a value to a params copy, cell order.

Facts from A1111 `scripts/xyz_grid.py` (reference §9):

* Values are CSV (`csv.reader`, `skipinitialspace`, so `"a, b", c` keeps the comma inside quotes).
* Integer axes accept `1-5` → 1..5, `1-5 (+2)` → 1,3,5, `10-5 (-3)` → 10,7, `1-10 [5]` → 5 evenly spaced
  values (numpy linspace, truncated to int); float axes accept `0.5-1.5 (+0.25)` and `0.0-1.0 [6]`.
  Deviation: A1111 makes the end inclusive only for positive steps (`range(start, end + 1, step)`), so `5-1`
  gives nothing; here the end is inclusive in the step's direction and a range without a step counts down when
  start > end.
* Seed axes: -1 (or empty) becomes a random seed unless "Keep -1 for seeds" is on.
* Labels: numbers and most choices are drawn as "<axis label>: <value>"; Prompt S/R, Prompt order and Size show
  the value alone; "Nothing" shows nothing.
* The cells run with the most expensive axis (checkpoint, VAE: a model load) in the outermost loop.
"""

from __future__ import annotations

import csv
import itertools
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from io import StringIO
from typing import Any

import numpy as np

MAX_RANDOM_SEED = 4294967294
"""A1111 draws random seeds with `random.randrange(4294967294)`."""

_INT_STEP = re.compile(r"^\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)(?:\s*\(([+-]?\d+)\s*\))?\s*$")
_INT_COUNT = re.compile(r"^\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)\s*\[(\d+)\s*\]\s*$")
_NUM = r"[+-]?\s*\d+(?:\.\d*)?"
_FLOAT_STEP = re.compile(rf"^\s*({_NUM})\s*-\s*({_NUM})(?:\s*\(({_NUM})\s*\))?\s*$")
_FLOAT_COUNT = re.compile(rf"^\s*({_NUM})\s*-\s*({_NUM})\s*\[(\d+)\s*\]\s*$")


class AxisValueError(ValueError):
    """A value that does not fit its axis (the message names the axis and the value)."""


def split_values(text: str) -> list[str]:
    """CSV split with quotes and spaces after commas skipped, as A1111 does; empty items dropped."""
    if not text.strip():
        return []
    rows = list(csv.reader(StringIO(text), skipinitialspace=True))
    return [item.strip() for row in rows for item in row if item.strip()]


def _num(text: str) -> float:
    return float(text.replace(" ", ""))


def _inclusive_arange(start: float, end: float, step: float) -> list[float]:
    if step == 0:
        raise AxisValueError(f"range {start}-{end}: the step must not be 0")
    out: list[float] = []
    k = 0
    eps = abs(step) * 1e-9
    while True:
        value = start + k * step
        if (step > 0 and value > end + eps) or (step < 0 and value < end - eps):
            return out
        out.append(value)
        k += 1


def parse_int_values(text: str) -> list[int]:
    """Integer axis values: plain numbers, `a-b`, `a-b (+s)`, `a-b [n]` (see module docstring)."""
    out: list[int] = []
    for item in split_values(text):
        if m := _INT_COUNT.match(item):
            start, end, count = int(_num(m[1])), int(_num(m[2])), int(m[3])
            out += [int(v) for v in np.linspace(start, end, count)]
        elif m := _INT_STEP.match(item):
            start, end = int(_num(m[1])), int(_num(m[2]))
            step = int(m[3]) if m[3] else (1 if end >= start else -1)
            out += [int(v) for v in _inclusive_arange(start, end, step)]
        else:
            try:
                out.append(int(_num(item)))
            except ValueError:
                raise AxisValueError(f"{item!r} is not an integer or an integer range") from None
    return out


def parse_float_values(text: str) -> list[float]:
    """Float axis values: plain numbers, `a-b`, `a-b (+s)`, `a-b [n]` (see module docstring)."""
    out: list[float] = []
    for item in split_values(text):
        if m := _FLOAT_COUNT.match(item):
            out += [float(v) for v in np.linspace(_num(m[1]), _num(m[2]), int(m[3]))]
        elif m := _FLOAT_STEP.match(item):
            start, end = _num(m[1]), _num(m[2])
            step = _num(m[3]) if m[3] else (1.0 if end >= start else -1.0)
            out += [round(v, 10) for v in _inclusive_arange(start, end, step)]
        else:
            try:
                out.append(float(_num(item)))
            except ValueError:
                raise AxisValueError(f"{item!r} is not a number or a number range") from None
    return out


def fix_seeds(values: Sequence[int], *, keep_random: bool, rng: random.Random | None = None) -> list[int]:
    """-1 → a random seed (A1111 `fix_axis_seeds`), unless "Keep -1 for seeds"."""
    if keep_random:
        return list(values)
    rng = rng or random.Random()
    return [rng.randrange(MAX_RANDOM_SEED) if v in (-1, None) else v for v in values]


def parse_size(value: str) -> tuple[int, int]:
    """`512x768` → (512, 768) (A1111 Size axis)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", value)
    if not m:
        raise AxisValueError(f"Size: {value!r} is not WIDTHxHEIGHT")
    return int(m[1]), int(m[2])


def parse_bool(value: Any) -> bool:
    """'true'/'false' (any case) or a bool."""
    if isinstance(value, bool):
        return value
    low = str(value).strip().lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise AxisValueError(f"{value!r} is not true or false")


# applying values -------------------------------------------------------------------------------------------------
def set_field(name: str) -> Callable[[Any, Any, Sequence[Any]], None]:
    """Apply a value by setting `p.<name>`."""
    def apply(p: Any, value: Any, values: Sequence[Any]) -> None:
        setattr(p, name, value)
    return apply


def set_override(key: str) -> Callable[[Any, Any, Sequence[Any]], None]:
    """Apply a value as the per-job setting `p.override_settings[key]` (A1111 `apply_override`)."""
    def apply(p: Any, value: Any, values: Sequence[Any]) -> None:
        p.override_settings = {**(getattr(p, "override_settings", None) or {}), key: value}
    return apply


def apply_prompt_sr(p: Any, value: str, values: Sequence[str]) -> None:
    """Prompt S/R: the first value is replaced by this one in prompt and negative prompt."""
    search = values[0]
    if search not in p.prompt and search not in p.negative_prompt:
        raise AxisValueError(f"Prompt S/R did not find {search} in prompt or negative prompt.")
    p.prompt = p.prompt.replace(search, value)
    p.negative_prompt = p.negative_prompt.replace(search, value)


def apply_prompt_order(p: Any, value: Sequence[str], values: Sequence[Any]) -> None:
    """Prompt order: the tokens, found in the prompt, are put back in the order of this permutation."""
    tokens = sorted(value, key=lambda t: p.prompt.find(t))
    positions = [p.prompt.find(t) for t in tokens]
    if any(pos < 0 for pos in positions):
        missing = [t for t, pos in zip(tokens, positions, strict=True) if pos < 0]
        raise AxisValueError(f"Prompt order: {', '.join(missing)} not found in the prompt")
    pieces, last = [], 0
    for token, pos in zip(tokens, positions, strict=True):
        pieces.append(p.prompt[last:pos])
        last = pos + len(token)
    tail = p.prompt[last:]
    p.prompt = "".join(piece + token for piece, token in zip(pieces, value, strict=True)) + tail


def apply_size(p: Any, value: str, values: Sequence[Any]) -> None:
    """Size: `WxH` sets width and height."""
    p.width, p.height = parse_size(value)


def apply_styles(p: Any, value: str, values: Sequence[Any]) -> None:
    """Styles: comma-separated style names are added to the job's styles."""
    p.styles = [*(getattr(p, "styles", None) or []), *[s.strip() for s in value.split(",") if s.strip()]]


def apply_refiner(p: Any, value: str, values: Sequence[Any]) -> None:
    """Refiner checkpoint: "None" turns the refiner off."""
    p.refiner_checkpoint = None if value.strip().lower() == "none" else value


@dataclass
class Axis:
    """One axis type: how values are parsed, applied to a params copy and labelled; `cost` orders the loops."""

    label: str
    kind: str  # "int", "float", "str", "bool", "order", "none"
    apply: Callable[[Any, Any, Sequence[Any]], None]
    tabs: tuple[str, ...] = ("txt2img", "img2img")
    cost: float = 0.0
    labelled: bool = True
    choices: Callable[[], list[str]] | None = None
    validate: Callable[[Sequence[Any]], None] | None = None
    is_seed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def parse(self, text: str) -> list[Any]:
        """Text from the UI/API → the axis values."""
        if self.kind == "none":
            return [None]
        if self.kind == "int":
            return parse_int_values(text)
        if self.kind == "float":
            return parse_float_values(text)
        items = split_values(text)
        if self.kind == "bool":
            return [parse_bool(v) for v in items]
        if self.kind == "order":
            return [list(perm) for perm in itertools.permutations(items)]
        return items

    def format(self, value: Any) -> str:
        """The legend text of one value."""
        if self.kind == "none":
            return ""
        if self.kind == "order":
            return ", ".join(value)
        if isinstance(value, float):
            value = f"{value:.10g}"
        return f"{self.label}: {value}" if self.labelled else str(value)


def _nothing(p: Any, value: Any, values: Sequence[Any]) -> None:
    """The Nothing axis changes nothing."""


T2I, I2I = ("txt2img",), ("img2img",)


def default_axes() -> list[Axis]:
    """A1111's axis types in A1111's order (labels are the names users type into the API `script_args`)."""
    return [
        Axis("Nothing", "none", _nothing, labelled=False),
        Axis("Seed", "int", set_field("seed"), is_seed=True),
        Axis("Var. seed", "int", set_field("subseed"), is_seed=True),
        Axis("Var. strength", "float", set_field("subseed_strength")),
        Axis("Steps", "int", set_field("steps")),
        Axis("Hires steps", "int", set_field("hr_second_pass_steps"), tabs=T2I),
        Axis("CFG Scale", "float", set_field("cfg_scale")),
        Axis("Image CFG Scale", "float", set_field("image_cfg_scale"), tabs=I2I),
        Axis("Prompt S/R", "str", apply_prompt_sr, labelled=False),
        Axis("Prompt order", "order", apply_prompt_order, labelled=False),
        Axis("Sampler", "str", set_field("sampler_name")),
        Axis("Hires sampler", "str", set_field("hr_sampler_name"), tabs=T2I),
        Axis("Checkpoint name", "str", set_override("sd_model_checkpoint"), cost=1.0, labelled=False),
        Axis("Negative Guidance minimum sigma", "float", set_field("s_min_uncond")),
        Axis("Sigma Churn", "float", set_field("s_churn")),
        Axis("Sigma min", "float", set_field("s_tmin")),
        Axis("Sigma max", "float", set_field("s_tmax")),
        Axis("Sigma noise", "float", set_field("s_noise")),
        Axis("Schedule type", "str", set_field("scheduler")),
        Axis("Schedule min sigma", "float", set_override("sigma_min")),
        Axis("Schedule max sigma", "float", set_override("sigma_max")),
        Axis("Schedule rho", "float", set_override("rho")),
        Axis("Beta schedule alpha", "float", set_override("beta_dist_alpha")),
        Axis("Beta schedule beta", "float", set_override("beta_dist_beta")),
        Axis("Eta", "float", set_field("eta")),
        Axis("Clip skip", "int", set_override("CLIP_stop_at_last_layers")),
        Axis("Denoising", "float", set_field("denoising_strength")),
        Axis("Initial noise multiplier", "float", set_field("initial_noise_multiplier")),
        Axis("Extra noise", "float", set_override("img2img_extra_noise")),
        Axis("Hires upscaler", "str", set_field("hr_upscaler"), tabs=T2I),
        Axis("Cond. Image Mask Weight", "float", set_override("inpainting_mask_weight"), tabs=I2I),
        Axis("VAE", "str", set_override("sd_vae"), cost=0.7),
        Axis("Styles", "str", apply_styles),
        Axis("UniPC Order", "int", set_override("uni_pc_order")),
        Axis("Face restore", "bool", set_field("restore_faces")),
        Axis("Token merging ratio", "float", set_override("token_merging_ratio")),
        Axis("Token merging ratio high-res", "float", set_override("token_merging_ratio_hr"), tabs=T2I),
        Axis("Always discard next-to-last sigma", "bool", set_override("always_discard_next_to_last_sigma")),
        Axis("SGM noise multiplier", "bool", set_override("sgm_noise_multiplier")),
        Axis("Refiner checkpoint", "str", apply_refiner, cost=1.0),
        Axis("Refiner switch at", "float", set_field("refiner_switch_at")),
        Axis("RNG source", "str", set_override("randn_source")),
        Axis("FP8 mode", "str", set_override("fp8_storage"), cost=0.9),
        Axis("Size", "str", apply_size, labelled=False),
        # added by A1111's built-in Hypertile extension, after the core axes
        Axis("[Hypertile] Unet First pass Enabled", "bool", set_override("hypertile_enable_unet")),
        Axis("[Hypertile] Unet Second pass Enabled", "bool", set_override("hypertile_enable_unet_secondpass")),
        Axis("[Hypertile] Unet Max Depth", "int", set_override("hypertile_max_depth_unet")),
        Axis("[Hypertile] Unet Max Tile Size", "int", set_override("hypertile_max_tile_unet")),
        Axis("[Hypertile] Unet Swap Size", "int", set_override("hypertile_swap_size_unet")),
        Axis("[Hypertile] VAE Enabled", "bool", set_override("hypertile_enable_vae")),
        Axis("[Hypertile] VAE Max Depth", "int", set_override("hypertile_max_depth_vae")),
        Axis("[Hypertile] VAE Max Tile Size", "int", set_override("hypertile_max_tile_vae")),
        Axis("[Hypertile] VAE Swap Size", "int", set_override("hypertile_swap_size_vae")),
    ]


def axes_for(tab: str, axes: Sequence[Axis] | None = None) -> list[Axis]:
    """The axis types offered on `tab` ("txt2img" or "img2img")."""
    return [a for a in (axes if axes is not None else default_axes()) if tab in a.tabs]


def find_axis(name: str | int, axes: Sequence[Axis]) -> Axis:
    """An axis by label (case-insensitive) or by index (the API passes indices in `script_args`)."""
    if isinstance(name, int) or (isinstance(name, str) and name.strip().isdigit()):
        index = int(name)
        if not 0 <= index < len(axes):
            raise AxisValueError(f"axis index {index} out of range 0-{len(axes) - 1}")
        return axes[index]
    for axis in axes:
        if axis.label.lower() == str(name).strip().lower():
            return axis
    raise AxisValueError(f"unknown axis type {name!r}; known: {', '.join(a.label for a in axes)}")


def check_values(axis: Axis, values: Sequence[Any], p: Any) -> None:
    """Check all values before any image is made (A1111 confirms samplers, checkpoints, Prompt S/R up front)."""
    if axis.kind != "none" and not values:
        raise AxisValueError(f"{axis.label}: no values given")
    if axis.label == "Prompt S/R":
        probe = type("Probe", (), {})()
        probe.prompt, probe.negative_prompt = p.prompt, p.negative_prompt
        apply_prompt_sr(probe, values[0], values)
    if axis.label == "Size":
        for value in values:
            parse_size(value)
    if axis.choices is not None:
        known = {c.lower() for c in axis.choices()}
        unknown = [v for v in values if str(v).lower() not in known]
        if unknown:
            raise AxisValueError(f"Unknown {axis.label.lower()}: {', '.join(map(str, unknown))}")
    if axis.validate is not None:
        axis.validate(values)


def apply_cell(p: Any, cell: Sequence[tuple[Axis, Any, Sequence[Any]]], *, copy: Callable[[Any], Any]) -> Any:
    """A copy of `p` with each (axis, value, all values of that axis) applied, X first, then Y, then Z."""
    q = copy(p)
    for axis, value, values in cell:
        axis.apply(q, value, values)
    return q


def plan_cells(n_x: int, n_y: int, n_z: int, costs: tuple[float, float, float]) -> list[tuple[int, int, int]]:
    """Every (ix, iy, iz) once, in run order: the costliest axis changes slowest (fewest model reloads).

    Ties keep A1111's default order: Z outermost, then Y, then X innermost.
    """
    sizes = (n_x, n_y, n_z)
    order = sorted(range(3), key=lambda axis: (-costs[axis], -axis))  # outermost first
    cells = []
    for combo in itertools.product(*(range(sizes[a]) for a in order)):
        index = [0, 0, 0]
        for axis, value in zip(order, combo, strict=True):
            index[axis] = value
        cells.append((index[0], index[1], index[2]))
    return cells


def vary_seed(seed: int, ix: int, iy: int, iz: int, n_x: int, n_y: int, *, vary: tuple[bool, bool, bool]) -> int:
    """"Vary seeds for X/Y/Z": the fixed seed plus the cell's offset along each varied axis (A1111)."""
    if vary[0]:
        seed += ix
    if vary[1]:
        seed += iy * n_x
    if vary[2]:
        seed += iz * n_x * n_y
    return seed
