"""Saving a finished job's images, grid and `params.txt` (A1111 `process_images_inner` saving, reference §13).

* Samples go to `outputs/<kind>-images/…` when `samples_save` is on and `do_not_save_samples` is off; the grid
  (more than one image, `grid_save`, unless `do_not_save_grid`; `grid_only_if_multiple`) to `<kind>-grids/` with
  the first image's infotext. Every file is written atomically by `modules.images.save_image`.
* `params.txt` in the data folder gets the first image's infotext (A1111, unless `--no-prompt-history`).
* Nothing is written for a job that was interrupted: the caller saves only after every image is done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from modules.images import FilenameJob, image_grid, output_dir, save_grid, save_image, write_params_txt
from modules.processing.conditioning import opt


@dataclass
class SaveRequest:
    """What one finished job wants on disk."""

    kind: str                    # "txt2img" or "img2img"
    images: list[Image.Image]
    infotexts: list[str]
    seeds: list[int]
    prompts: list[str]
    negative_prompts: list[str]
    batch_size: int
    n_iter: int
    do_not_save_samples: bool
    do_not_save_grid: bool
    filename_job: FilenameJob


def _base_dir(ctx: Any) -> Path:
    paths = getattr(ctx, "paths", None)
    return Path(getattr(paths, "data_dir", ".")) if paths is not None else Path(".")


def _job_for(request: SaveRequest, index: int) -> FilenameJob:
    job = request.filename_job
    return FilenameJob(**{**job.__dict__, "batch_index": index % request.batch_size,
                          "iteration": index // request.batch_size,
                          "prompt": request.prompts[index], "negative_prompt": request.negative_prompts[index]})


def make_grid(images: Sequence[Image.Image], batch_size: int, settings: Mapping[str, Any]) -> Image.Image:
    """A1111 `image_grid` with the `n_rows` / `grid_prevent_empty_spots` settings."""
    return image_grid(list(images), batch_size=batch_size, settings=settings)


def wants_grid(count: int, settings: Mapping[str, Any]) -> bool:
    """A grid is made for more than one image (or always with `grid_only_if_multiple` off)."""
    return count > 1 or (count == 1 and not opt(settings, "grid_only_if_multiple", True))


def save_outputs(ctx: Any, settings: Mapping[str, Any], request: SaveRequest,
                 grid: Image.Image | None) -> list[str]:
    """Write the samples, the grid and params.txt; returns the written paths (samples first)."""
    settings = dict(settings)  # a plain mapping: `key in snapshot` raises for unknown keys instead of False
    base = _base_dir(ctx)
    written: list[str] = []
    if opt(settings, "samples_save", True) and not request.do_not_save_samples:
        folder = output_dir(request.kind, settings, base_dir=base)
        for index, image in enumerate(request.images):
            saved = save_image(image, folder, "", settings=settings, seed=request.seeds[index],
                               prompt=request.prompts[index], info=request.infotexts[index],
                               job=_job_for(request, index))
            written.append(str(saved.path))
    if grid is not None and opt(settings, "grid_save", True) and not request.do_not_save_grid:
        folder = output_dir(request.kind, settings, grid=True, base_dir=base)
        saved = save_grid(grid, folder, settings=settings, seed=request.seeds[0], prompt=request.prompts[0],
                          info=request.infotexts[0], job=_job_for(request, 0))
        written.append(str(saved.path))
    flags = getattr(ctx, "flags", None)
    if request.infotexts and not getattr(flags, "no_prompt_history", False):
        write_params_txt(base, request.infotexts[0])
    return written
