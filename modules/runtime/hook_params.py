"""Parameter objects handed to script hooks and callbacks, defined once for the pipeline and the plugin API.

They carry A1111's class and field names (`scripts.PostprocessImageArgs`, `script_callbacks.ImageSaveParams`, …)
so A1111-style scripts can read and replace their fields. They live in this low layer because both
`modules.processing` (which creates them) and `modules.extensions` (which publishes them) use them, and those two
packages do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class PostprocessImageArgs:
    """`postprocess_image(p, pp)`: `pp.image` may be replaced (A1111 `scripts.PostprocessImageArgs`)."""

    image: Any
    index: int = 0


@dataclass
class PostprocessBatchListArgs:
    """`postprocess_batch_list(p, pp, batch_number=)`: `pp.images` may be edited (A1111 class of that name)."""

    images: list[Any]


@dataclass
class PostSampleArgs:
    """`post_sample(p, ps)`: `ps.samples` may be replaced (A1111 `scripts.PostSampleArgs`)."""

    samples: Any


@dataclass
class ImageSaveParams:
    """`before_image_saved` / `image_saved`: image, p, filename, pnginfo (A1111 `script_callbacks.ImageSaveParams`)."""

    image: Any
    p: Any
    filename: str
    pnginfo: dict[str, Any]


@dataclass
class ExtraNoiseParams:
    """`extra_noise`: noise, latent `x`, latent image `xi` (A1111 `script_callbacks.ExtraNoiseParams`)."""

    noise: Any
    x: Any
    xi: Any


@dataclass
class ImageGridLoopParams:
    """`image_grid`: images and layout before a grid is built; callbacks may change them (A1111 class name)."""

    imgs: list[Any]
    cols: int
    rows: int
