"""Saving a finished job's images, grid and `params.txt` (A1111 `process_images_inner` saving, reference §13).

* Samples go to `outputs/<kind>-images/…` when `samples_save` is on and `do_not_save_samples` is off; the grid
  (more than one image, `grid_save`, unless `do_not_save_grid`; `grid_only_if_multiple`) to `<kind>-grids/` with
  the first image's infotext. Every file is written atomically by `modules.images.save_image`.
* `params.txt` in the data folder gets the first image's infotext (A1111, unless `--no-prompt-history`).
* File names follow `--filenames-max-length` and `--unix-filenames-sanitization` (A1111 `FilenameGenerator`).
* Images an interrupt left incomplete are returned but written only with `save_incomplete_images` (A1111
  `p.save_samples()`); a grid holding such unwritten images is not written either (A1111 writes it; here no file of
  an interrupted job shows images the setting keeps off the disk).
* Callbacks (A1111 `script_callbacks`): `image_grid(ImageGridLoopParams)` before a grid is built (callbacks may
  change the images and the layout), `before_image_saved(ImageSaveParams)` before each file (callbacks may replace
  the image and the `parameters` text; `filename` is the target folder, the final name is chosen while writing)
  and `image_saved(ImageSaveParams)` with the written path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from modules.images import FilenameJob, grid_rows, image_grid, output_dir, save_grid, save_image, write_params_txt
from modules.processing.conditioning import opt
from modules.processing.hooks import ImageGridLoopParams, ImageSaveParams, JobHooks

if TYPE_CHECKING:  # context.py imports this module: the name is for the type checker only
    from modules.processing.context import AppContext

log = logging.getLogger(__name__)


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
    params: Any = None
    unsaved: frozenset[int] = frozenset()
    """Positions in `images` not to write: images an interrupt left incomplete (`save_incomplete_images` off)."""


def data_dir(ctx: AppContext) -> Path:
    """The data folder relative output settings are taken from (`--data-dir`)."""
    paths = getattr(ctx, "paths", None)
    return Path(getattr(paths, "data_dir", ".")) if paths is not None else Path(".")


def _job_for(request: SaveRequest, index: int) -> FilenameJob:
    job = request.filename_job
    return FilenameJob(**{**job.__dict__, "batch_index": index % request.batch_size,
                          "iteration": index // request.batch_size,
                          "prompt": request.prompts[index], "negative_prompt": request.negative_prompts[index]})


def make_grid(images: Sequence[Image.Image], batch_size: int, settings: Mapping[str, Any],
              hooks: JobHooks | None = None) -> Image.Image:
    """A1111 `image_grid` with the `n_rows` / `grid_prevent_empty_spots` settings; the `image_grid` callbacks see
    (and may change) the images, columns and rows first."""
    rows = grid_rows(len(images), n_rows=int(opt(settings, "n_rows", -1)), batch_size=batch_size,
                     prevent_empty_spots=bool(opt(settings, "grid_prevent_empty_spots", False)))
    rows = min(rows, len(images))
    loop = ImageGridLoopParams(list(images), -(-len(images) // rows), rows)
    if hooks is not None:
        hooks.fire("image_grid", loop)
    return image_grid(loop.imgs, rows=max(1, min(loop.rows, len(loop.imgs))), settings=settings)


def save_hooked(hooks: JobHooks | None, p: Any, image: Image.Image, folder: Path, info: str,
                save: Callable[[Image.Image, str], Any]) -> Any:
    """`save(image, infotext)` between the `before_image_saved` (may replace image and text) and `image_saved`
    callbacks, as every A1111 `images.save_image` call fires them."""
    params = ImageSaveParams(image, p, str(folder), {"parameters": info})
    if hooks is not None:
        hooks.fire("before_image_saved", params)
    saved = save(params.image, str(params.pnginfo.get("parameters", info)))
    if hooks is not None:
        hooks.fire("image_saved", ImageSaveParams(params.image, p, str(saved.path), params.pnginfo))
    return saved


def flag_saving_options(flags: Any) -> dict[str, Any]:
    """The command-line options `save_image` reads beside the settings (A1111 `cmd_opts`):
    `--filenames-max-length` (default 128) and `--unix-filenames-sanitization`."""
    out: dict[str, Any] = {}
    if flags is None:
        return out
    length = getattr(flags, "filenames_max_length", None)
    if length:
        out["filenames_max_length"] = int(length)
    out["unix_filenames_sanitization"] = bool(getattr(flags, "unix_filenames_sanitization", False))
    return out


def wants_grid(count: int, settings: Mapping[str, Any]) -> bool:
    """A grid is made for more than one image (or always with `grid_only_if_multiple` off)."""
    return count > 1 or (count == 1 and not opt(settings, "grid_only_if_multiple", True))


def _unsaved_notice(what: str, folder: Path, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return (f"The {what} could not be saved to {folder} ({reason}); it is returned here but not on disk. Free some "
            "space or choose another output folder in Settings → Saving images.")


def save_outputs(ctx: AppContext, settings: Mapping[str, Any], request: SaveRequest,
                 grid: Image.Image | None, hooks: JobHooks | None = None,
                 notices: list[str] | None = None) -> list[str]:
    """Write the samples, the grid and params.txt; returns the written paths (samples first).

    A write that fails (disk full, folder not writable) never loses the job: the images are still returned, a
    notice says what was not saved, and the atomic writer leaves no partial file behind (A1111 answers 500 and the
    image is gone)."""
    notices = notices if notices is not None else []
    settings = {**dict(settings), **flag_saving_options(getattr(ctx, "flags", None))}
    base = data_dir(ctx)
    written: list[str] = []
    if opt(settings, "samples_save", True) and not request.do_not_save_samples:
        folder = output_dir(request.kind, settings, base_dir=base)
        for index, image in enumerate(request.images):
            if index in request.unsaved:
                continue
            def save(im: Image.Image, info: str, index: int = index, folder: Path = folder) -> Any:
                return save_image(im, folder, "", settings=settings, seed=request.seeds[index],
                                  prompt=request.prompts[index], info=info, job=_job_for(request, index))
            try:
                saved = save_hooked(hooks, request.params, image, folder, request.infotexts[index], save)
            except OSError as exc:
                log.error("could not save image %d: %s", index, exc)
                notices.append(_unsaved_notice("image", folder, exc))
                continue
            written.append(str(saved.path))
    if grid is not None and opt(settings, "grid_save", True) and not request.do_not_save_grid \
            and not request.unsaved:
        folder = output_dir(request.kind, settings, grid=True, base_dir=base)
        def save_g(im: Image.Image, info: str, folder: Path = folder) -> Any:
            return save_grid(im, folder, settings=settings, seed=request.seeds[0], prompt=request.prompts[0],
                             info=info, job=_job_for(request, 0))
        try:
            saved = save_hooked(hooks, request.params, grid, folder, request.infotexts[0], save_g)
            written.append(str(saved.path))
        except OSError as exc:
            log.error("could not save the grid: %s", exc)
            notices.append(_unsaved_notice("grid", folder, exc))
    flags = getattr(ctx, "flags", None)
    if request.infotexts and not getattr(flags, "no_prompt_history", False):
        try:
            write_params_txt(base, request.infotexts[0])
        except OSError as exc:
            log.error("could not write params.txt: %s", exc)
    return written
