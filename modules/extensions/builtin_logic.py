"""Pure logic of the built-in scripts other than X/Y/Z (testable without a pipeline).

Sources (A1111 behaviour, reference §9): `scripts/prompt_matrix.py`, `scripts/prompts_from_file.py`,
`scripts/loopback.py`, `scripts/sd_upscale.py` with `modules/images.py::split_grid/combine_grid`,
`scripts/poor_mans_outpainting.py`, `scripts/outpainting_mk_2.py`.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image


class ScriptInputError(ValueError):
    """Bad input to a built-in script (the message says which line/option/value)."""


# Prompt matrix ---------------------------------------------------------------------------------------------------
def prompt_matrix_prompts(prompt: str, *, put_at_start: bool = False, delimiter: str = ", ") -> list[str]:
    """All 2^(n-1) prompts of "base | a | b …": the first part always, every subset of the others.

    Combination k includes optional part i when bit i of k is set (A1111 order, so the grid legend matches);
    parts are stripped of spaces and commas; "put variable parts at start" puts the base last.
    """
    parts = prompt.split("|")
    base, optional = parts[0].strip().strip(","), [p.strip().strip(",") for p in parts[1:]]
    out = []
    for k in range(1 << len(optional)):
        chosen = [text for i, text in enumerate(optional) if k & (1 << i)]
        items = [*chosen, base] if put_at_start else [base, *chosen]
        out.append(delimiter.join(t for t in items if t))
    return out


def prompt_matrix_rows(n_parts: int) -> int:
    """Grid rows of a prompt matrix of `n_parts` "|"-separated parts (A1111: 1 << ((n - 1) // 2))."""
    return 1 << ((n_parts - 1) // 2)


# Prompts from file or textbox ----------------------------------------------------------------------------------
def _bool(value: str) -> bool:
    return value.strip().lower() == "true"


def _string_list(value: str) -> list[str]:
    return [s.strip() for s in value.split(",") if s.strip()]


PROMPT_LINE_OPTIONS: dict[str, Callable[[str], Any]] = {
    "sd_model": str, "outpath_samples": str, "outpath_grids": str, "prompt_for_display": str,
    "prompt": str, "negative_prompt": str, "styles": _string_list,
    "seed": int, "subseed_strength": float, "subseed": int,
    "seed_resize_from_h": int, "seed_resize_from_w": int,
    "sampler_index": int, "sampler_name": str, "batch_size": int, "n_iter": int, "steps": int,
    "cfg_scale": float, "width": int, "height": int,
    "restore_faces": _bool, "tiling": _bool, "do_not_save_samples": _bool, "do_not_save_grid": _bool,
}
"""A1111's `prompt_tags`: the `--key value` options of a line and how each value is read."""


def parse_prompt_line(line: str) -> dict[str, Any]:
    """One line of "Prompts from file or textbox": a plain prompt, or `--key value …` options (shlex quoting).

    `--prompt` and `--negative_prompt` take every word up to the next `--option` (A1111 behaviour); an unknown
    option or a bad value is an error naming it.
    """
    line = line.strip()
    if "--" not in line:
        return {"prompt": line}
    try:
        args = shlex.split(line)
    except ValueError as exc:
        raise ScriptInputError(f"line {line!r}: {exc}") from None
    out: dict[str, Any] = {}
    pos = 0
    while pos < len(args):
        arg = args[pos]
        if not arg.startswith("--"):
            raise ScriptInputError(f"line {line!r}: expected an --option, got {arg!r}")
        tag = arg[2:]
        if tag not in PROMPT_LINE_OPTIONS:
            raise ScriptInputError(f"line {line!r}: unknown option {arg} (known: "
                                   f"{', '.join('--' + k for k in PROMPT_LINE_OPTIONS)})")
        if tag in ("prompt", "negative_prompt"):
            words = []
            pos += 1
            while pos < len(args) and not args[pos].startswith("--"):
                words.append(args[pos])
                pos += 1
            out[tag] = " ".join(words)
            continue
        if pos + 1 >= len(args):
            raise ScriptInputError(f"line {line!r}: option {arg} needs a value")
        try:
            out[tag] = PROMPT_LINE_OPTIONS[tag](args[pos + 1])
        except ValueError:
            raise ScriptInputError(f"line {line!r}: bad value {args[pos + 1]!r} for {arg}") from None
        pos += 2
    return out


def parse_prompt_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line of the textbox/file as a job's options."""
    return [parse_prompt_line(x) for x in (raw.strip() for raw in text.splitlines()) if x]


def combine_prompt(job_prompt: str | None, ui_prompt: str, position: str) -> str:
    """The line's prompt joined with the UI prompt, at the "start" or "end" (A1111 "Insert prompts at the")."""
    if not job_prompt or not ui_prompt:
        return job_prompt or ui_prompt
    return f"{job_prompt} {ui_prompt}" if position == "start" else f"{ui_prompt} {job_prompt}"


# Loopback ------------------------------------------------------------------------------------------------------
def loopback_strength(loop: int, loops: int, initial: float, final: float, curve: str) -> float:
    """Denoising strength of loop number `loop` (0-based) from `initial` to `final` along the curve.

    A1111: progress = loop / (loops - 1); Aggressive = sin(progress·π/2), Lazy = 1 − cos(progress·π/2),
    Linear = progress; strength = initial + (final − initial) · curve(progress); one loop keeps `initial`.
    """
    if loops <= 1:
        return initial
    progress = loop / (loops - 1)
    if curve == "Aggressive":
        shape = math.sin(progress * math.pi * 0.5)
    elif curve == "Lazy":
        shape = 1 - math.cos(progress * math.pi * 0.5)
    elif curve == "Linear":
        shape = progress
    else:
        raise ScriptInputError(f"unknown denoising curve {curve!r}; use Aggressive, Linear or Lazy")
    return initial + (final - initial) * shape


# Tiles (SD upscale, poor man's outpainting) ---------------------------------------------------------------------
@dataclass
class Tile:
    """One tile of a larger image: its top-left corner and its image."""

    x: int
    y: int
    image: Image.Image


def tile_positions(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of `tile` px covering `size` px with at least `overlap` px overlap.

    A1111 `split_grid`: count = ceil((size − overlap) / (tile − overlap)), spread evenly, the last one flush
    with the edge; an image smaller than a tile gets one tile at 0.
    """
    if tile <= overlap:
        raise ScriptInputError(f"tile size {tile} must be larger than the overlap {overlap}")
    if size <= tile:
        return [0]
    count = math.ceil((size - overlap) / (tile - overlap))
    step = (size - tile) / (count - 1) if count > 1 else 0
    return [min(int(i * step), size - tile) for i in range(count)]


def split_tiles(image: Image.Image, tile_w: int, tile_h: int, overlap: int) -> list[list[Tile]]:
    """Rows of tiles of tile_w × tile_h covering the image (see `tile_positions`)."""
    return [[Tile(x, y, image.crop((x, y, x + tile_w, y + tile_h))) for x in tile_positions(image.width, tile_w,
                                                                                          overlap)]
            for y in tile_positions(image.height, tile_h, overlap)]


def _ramp(length: int, overlap: int, start: bool, end: bool) -> np.ndarray:
    weights = np.ones(length, dtype=np.float64)
    if overlap > 0:
        ramp = (np.arange(overlap, dtype=np.float64) + 0.5) / overlap
        if start:
            weights[:overlap] = np.minimum(weights[:overlap], ramp)
        if end:
            weights[-overlap:] = np.minimum(weights[-overlap:], ramp[::-1])
    return weights


def combine_tiles(rows: Sequence[Sequence[Tile]], width: int, height: int, overlap: int) -> Image.Image:
    """Stitch tiles back into a width × height image, blending overlaps linearly (as A1111 `combine_grid`)."""
    acc = np.zeros((height, width, 3), dtype=np.float64)
    total = np.zeros((height, width, 1), dtype=np.float64)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            pixels = np.asarray(tile.image.convert("RGB"), dtype=np.float64)
            h, w = pixels.shape[:2]
            wy = _ramp(h, min(overlap, h), r > 0, r < len(rows) - 1)
            wx = _ramp(w, min(overlap, w), c > 0, c < len(row) - 1)
            weight = (wy[:, None] * wx[None, :])[..., None]
            y1, x1 = min(tile.y + h, height), min(tile.x + w, width)
            acc[tile.y:y1, tile.x:x1] += (pixels * weight)[: y1 - tile.y, : x1 - tile.x]
            total[tile.y:y1, tile.x:x1] += weight[: y1 - tile.y, : x1 - tile.x]
    out = acc / np.maximum(total, 1e-8)
    return Image.fromarray(np.clip(np.round(out), 0, 255).astype(np.uint8), "RGB")


# Outpainting ---------------------------------------------------------------------------------------------------
DIRECTIONS = ("left", "right", "up", "down")


def expanded_canvas(width: int, height: int, pixels: int, directions: Sequence[str]) -> tuple[int, int, int, int]:
    """(new width, new height, x offset, y offset) after expanding by `pixels` in each chosen direction."""
    unknown = [d for d in directions if d not in DIRECTIONS]
    if unknown:
        raise ScriptInputError(f"unknown outpainting direction(s) {', '.join(unknown)}; use {', '.join(DIRECTIONS)}")
    if not directions:
        raise ScriptInputError("choose at least one outpainting direction")
    left, right = pixels * ("left" in directions), pixels * ("right" in directions)
    up, down = pixels * ("up" in directions), pixels * ("down" in directions)
    return width + left + right, height + up + down, left, up


def outpaint_canvas(image: Image.Image, pixels: int, directions: Sequence[str], *, mask_blur: int = 0,
                    fill: str = "edge") -> tuple[Image.Image, Image.Image]:
    """The enlarged image (new area filled by stretching the edge pixels) and its mask (white = to paint).

    The mask marks the new border plus `mask_blur` px into the original, so the seam is repainted, as A1111's
    poor man's outpainting does.
    """
    new_w, new_h, ox, oy = expanded_canvas(image.width, image.height, pixels, directions)
    src = np.asarray(image.convert("RGB"))
    ys = np.clip(np.arange(new_h) - oy, 0, image.height - 1)
    xs = np.clip(np.arange(new_w) - ox, 0, image.width - 1)
    canvas = src[ys][:, xs] if fill == "edge" else np.zeros((new_h, new_w, 3), np.uint8)
    canvas = canvas.copy()
    canvas[oy:oy + image.height, ox:ox + image.width] = src
    mask = np.full((new_h, new_w), 255, np.uint8)
    inner = mask_blur
    x0 = ox + (inner if "left" in directions else 0)
    y0 = oy + (inner if "up" in directions else 0)
    x1 = ox + image.width - (inner if "right" in directions else 0)
    y1 = oy + image.height - (inner if "down" in directions else 0)
    if x1 > x0 and y1 > y0:
        mask[y0:y1, x0:x1] = 0
    return Image.fromarray(canvas, "RGB"), Image.fromarray(mask, "L")


def matched_noise_fill(canvas: Image.Image, mask: Image.Image, *, falloff: float = 1.0,
                       color_variation: float = 0.05, seed: int = 0) -> Image.Image:
    """Outpainting mk2's border fill: noise shaped like the known image's spectrum in the masked area.

    Following the idea of A1111's `get_matched_noise`: white noise is filtered in the frequency domain by the
    magnitude spectrum of the known pixels (raised to `falloff`), given the known area's mean colour and spread
    (widened by `color_variation`), and written into the masked area only.
    """
    rng = np.random.default_rng(seed)
    src = np.asarray(canvas.convert("RGB"), dtype=np.float64) / 255.0
    hole = np.asarray(mask.convert("L"), dtype=np.float64) / 255.0 > 0.5
    known = ~hole
    if not known.any():
        raise ScriptInputError("outpainting needs some known pixels")
    out = src.copy()
    for ch in range(3):
        channel = np.where(known, src[..., ch], src[..., ch][known].mean())
        spectrum = np.abs(np.fft.fft2(channel)) ** max(falloff, 1e-3)
        noise = np.fft.ifft2(np.fft.fft2(rng.standard_normal(channel.shape)) * spectrum).real
        noise = (noise - noise.mean()) / (noise.std() + 1e-8)
        mean, std = src[..., ch][known].mean(), src[..., ch][known].std()
        shaped = mean + noise * (std + color_variation)
        out[..., ch] = np.where(hole, np.clip(shaped, 0, 1), src[..., ch])
    return Image.fromarray(np.round(out * 255).astype(np.uint8), "RGB")
