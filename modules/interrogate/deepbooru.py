"""DeepBooru tagging: image → comma-separated booru tags, formatted as A1111 does.

A1111 facts (`modules/deepbooru.py`, `DeepDanbooru.tag_multi`):
- the image is converted to RGB, resized to 512×512 with "resize and fill" (`images.resize_image(2, …)`), scaled to
  [0, 1] and fed NHWC;
- tags scoring below `interrogate_deepbooru_score_threshold` (0.5) are dropped, and so are `rating:*` tags;
- order: alphabetical when `deepbooru_sort_alpha` (default), else by descending score;
- `deepbooru_filter_tags` (comma separated; spaces count as underscores) removes tags;
- `deepbooru_use_spaces` turns `_` into spaces; `deepbooru_escape` puts `\\` before `(`, `)` and `\\`;
- `interrogate_return_ranks` writes `(tag:0.873)`;
- the model leaves the device after a run unless `interrogate_keep_models_in_memory`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from modules.interrogate.deepbooru_model import DeepDanbooruModel

__all__ = ["Resizer", "TagOptions", "format_tags", "prepare_image", "tag_image"]

Resizer = Callable[[Image.Image, int, int], Image.Image]
"""Resize an image to (width, height) by some rule."""

INPUT_SIZE = 512
_SPECIAL = re.compile(r"([\\()])")


@dataclass(frozen=True)
class TagOptions:
    """The DeepBooru settings (A1111 names and defaults)."""

    threshold: float = 0.5
    sort_alpha: bool = True
    use_spaces: bool = True
    escape: bool = True
    filter_tags: str = ""
    return_ranks: bool = False

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> TagOptions:
        """Read `interrogate_deepbooru_score_threshold`, `deepbooru_*` and `interrogate_return_ranks`."""
        return cls(threshold=float(settings.get("interrogate_deepbooru_score_threshold", 0.5)),
                   sort_alpha=bool(settings.get("deepbooru_sort_alpha", True)),
                   use_spaces=bool(settings.get("deepbooru_use_spaces", True)),
                   escape=bool(settings.get("deepbooru_escape", True)),
                   filter_tags=str(settings.get("deepbooru_filter_tags") or ""),
                   return_ranks=bool(settings.get("interrogate_return_ranks", False)))


def prepare_image(image: Image.Image, fill: Resizer) -> torch.Tensor:
    """`(1, 512, 512, 3)` float in [0, 1]; `fill` is A1111's "Resize and fill" (resize mode 2)."""
    picture = fill(image.convert("RGB"), INPUT_SIZE, INPUT_SIZE).convert("RGB")
    return torch.from_numpy(np.asarray(picture, dtype=np.float32)[None] / 255.0)


def format_tags(tags: Sequence[str], scores: Sequence[float], options: TagOptions) -> str:
    """The A1111 tag string for per-tag `scores` (see the module docstring for each rule)."""
    kept = {tag: float(score) for tag, score in zip(tags, scores, strict=True)
            if float(score) >= options.threshold and not tag.startswith("rating:")}
    ordered = sorted(kept) if options.sort_alpha else [t for t, _ in sorted(kept.items(), key=lambda kv: -kv[1])]
    blocked = {part.strip().replace(" ", "_") for part in options.filter_tags.split(",")}
    out: list[str] = []
    for tag in ordered:
        if tag in blocked:
            continue
        text = tag.replace("_", " ") if options.use_spaces else tag
        if options.escape:
            text = _SPECIAL.sub(r"\\\1", text)
        out.append(f"({text}:{kept[tag]:.3f})" if options.return_ranks else text)
    return ", ".join(out)


def tag_image(model: DeepDanbooruModel, image: Image.Image, options: TagOptions, device: torch.device,
              fill: Resizer) -> str:
    """Run the network on one image and format its tags."""
    with torch.inference_mode():
        scores = model(prepare_image(image, fill).to(device))[0].float().cpu().tolist()
    return format_tags(model.tags, scores, options)
