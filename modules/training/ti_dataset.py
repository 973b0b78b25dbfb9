"""Textual-inversion training inputs: the learning-rate schedule syntax, prompt templates and the image dataset.

A1111 behaviour implemented (reference §3.7; A1111 ``textual_inversion/learn_schedule.py`` and ``dataset.py``):

* Learning rate (and gradient-clipping value): a number, or ``rate:step`` pairs separated by commas, e.g.
  ``0.005:100, 1e-3:1000, 1e-5`` = 0.005 until step 100, then 1e-3 until step 1000, then 1e-5 until the last step;
  a pair ending at ``-1`` (or a bare rate) runs to the end. Pairs ending at or before the step training resumes from
  are skipped. Anything else is refused with an explanation of the syntax.
* Templates: ``textual_inversion_templates/<file>.txt``, one prompt per line; ``[name]`` becomes the embedding's
  name, ``[filewords]`` the image's words. Each sample draws a random line.
* Dataset: every image file in the dataset directory (recursively; not the ``.txt`` files). Its words are the
  same-named ``.txt`` file's text, else the file stem without a leading number run (``^[-\\d]+\\s*``), filtered by
  the ``dataset_filename_word_regex`` setting's matches joined with ``dataset_filename_join_string``. Words are
  comma-separated tags: with "Shuffle tags" they are shuffled, with "Drop out tags" each is dropped with that
  probability. Images are resized to width × height (kept as they are with "Do not resize images"), converted to
  RGB; with "Use PNG alpha channel as loss weight" the alpha channel (downscaled to latent size, normalised to mean
  1) weights the loss.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
LEADING_NUMBERS = re.compile(r"^[-\d]+\s*")
SCHEDULE_HELP = ('It should be a number or, for example, "0.005:100, 1e-3:1000, 1e-5" for 0.005 until step 100, '
                 "1e-3 until step 1000 and 1e-5 until the end")


class TrainingError(ValueError):
    """Bad training input; the message is shown to the user (API 400)."""


def parse_schedule(text: str | float, max_steps: int, current_step: int = 0, what: str = "learning rate"
                   ) -> list[tuple[float, int]]:
    """``[(rate, end_step)]`` of the schedule still ahead of ``current_step`` (syntax in the module docstring)."""
    pieces = [p.strip() for p in str(text).split(",") if p.strip()]
    schedule: list[tuple[float, int]] = []
    try:
        for piece in pieces:
            parts = piece.split(":")
            if len(parts) > 2:
                raise ValueError(piece)
            rate = float(parts[0])
            end = int(parts[1]) if len(parts) == 2 else -1
            if end == -1 or end >= max_steps:
                schedule.append((rate, max_steps))
                break
            if end > current_step:
                schedule.append((rate, end))
    except ValueError:
        raise TrainingError(f"Invalid {what} schedule {text!r}. {SCHEDULE_HELP}.") from None
    if not schedule:
        raise TrainingError(f"Invalid {what} schedule {text!r}: no rate applies after step {current_step}. "
                            f"{SCHEDULE_HELP}.")
    return schedule


def rate_at(schedule: list[tuple[float, int]], step: int) -> float | None:
    """The rate for (0-based) ``step``, None once the schedule has ended."""
    for rate, end in schedule:
        if step < end:
            return rate
    return None


def list_templates(folder: str | os.PathLike[str]) -> dict[str, Path]:
    """``{file name: path}`` of the ``.txt`` templates (recursive, sorted)."""
    root = Path(folder)
    if not root.is_dir():
        return {}
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*.txt"))}


def read_template(path: Path) -> list[str]:
    """Non-empty lines of a template file."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise TrainingError(f"Prompt template {path.name} is empty")
    return lines


@dataclass
class Sample:
    """One training image: pixels in [-1, 1] ``[3, H, W]``, its words and optional alpha weight ``[1, H, W]``."""

    path: Path
    pixels: torch.Tensor
    words: str
    weight: torch.Tensor | None = None


def image_words(path: Path, word_regex: str = "", join_string: str = " ") -> str:
    """The words of an image (A1111 rule in the module docstring)."""
    sidecar = path.with_suffix(".txt")
    if sidecar.is_file():
        return sidecar.read_text(encoding="utf-8", errors="replace").strip()
    text = LEADING_NUMBERS.sub("", path.stem)
    if word_regex:
        try:
            text = join_string.join(re.findall(word_regex, text))
        except re.error as error:
            raise TrainingError(f"dataset_filename_word_regex {word_regex!r} is invalid ({error})") from None
    return text


def load_dataset(data_root: str | os.PathLike[str], width: int, height: int, *, varsize: bool = False,
                 use_weight: bool = False, word_regex: str = "", join_string: str = " ") -> list[Sample]:
    """Every image of ``data_root`` as a :class:`Sample` (TrainingError when there is none)."""
    root = Path(data_root) if str(data_root).strip() else None
    if root is None or not root.is_dir():
        raise TrainingError(f"Dataset directory {str(data_root)!r} does not exist")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise TrainingError(f"Dataset directory {root} has no images ({', '.join(IMAGE_SUFFIXES)})")
    samples = []
    for path in files:
        try:
            with Image.open(path) as opened:
                image = opened.convert("RGBA")
        except OSError as error:
            raise TrainingError(f"Dataset image {path.name} cannot be read ({error})") from None
        if not varsize:
            image = image.resize((width, height), Image.Resampling.BICUBIC)
        w, h = (image.width // 8) * 8, (image.height // 8) * 8
        if w < 8 or h < 8:
            raise TrainingError(f"Dataset image {path.name} is smaller than 8×8")
        image = image.crop((0, 0, w, h))
        array = torch.from_numpy(np.asarray(image, dtype=np.float32).copy())
        pixels = array[..., :3].permute(2, 0, 1) / 127.5 - 1.0
        weight = None
        if use_weight:
            alpha = array[..., 3].unsqueeze(0) / 255.0
            weight = alpha / alpha.mean().clamp_min(1e-6)
        samples.append(Sample(path, pixels, image_words(path, word_regex, join_string), weight))
    return samples


def make_prompt(lines: list[str], name: str, words: str, rng: random.Random, *, shuffle_tags: bool = False,
                tag_drop_out: float = 0.0) -> str:
    """A random template line with ``[name]`` and ``[filewords]`` filled in (tags shuffled / dropped out)."""
    tags = [t.strip() for t in words.split(",")] if words else []
    if tag_drop_out:
        tags = [t for t in tags if rng.random() > tag_drop_out]
    if shuffle_tags:
        rng.shuffle(tags)
    line = rng.choice(lines)
    return line.replace("[filewords]", ", ".join(tags)).replace("[name]", name)
