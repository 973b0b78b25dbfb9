"""img2img "Batch" tab from folders (A1111 `modules/img2img.py::process_batch`, reference §3.3).

* Input: every image file of `input_dir` (sorted by name); each becomes one img2img job with `init_images =
  [image] * batch_size` (EXIF orientation applied).
* Inpaint batch mask folder: when it holds images, each input gets the mask with the same file stem (any
  extension); a single mask file is used for every input; an input without a mask is skipped with a notice
  (A1111 prints "mask is not found … Skipping it").
* Output folder: when given, results are written there as `<input stem>.<ext>` (`-1`, `-2`, … for the further
  images of the same input; ext = the input's extension, RGBA converted to RGB) with the infotext embedded, and
  not to the usual outputs folder (A1111 `do_not_save_samples = not save_normally`); when empty the jobs save
  normally. Per-input grids are never saved (A1111 sets `do_not_save_grid`).
* `img2img_batch_use_original_name`: samples the jobs save normally (no output folder) are named after the input
  file, `<stem>` or `<stem>-[generation_number]` when a job makes several images (A1111 1.10 sets that
  `samples_filename_pattern` per input; the usual number prefix and suffixes still apply). In an output folder the
  files always carry the input's name, which is what A1111 does with the setting on (with it off A1111 numbers
  them like samples).
* An interrupt stops the batch (the images finished before stay written); a job that fails for one file is
  reported by name and the batch goes on.
* "Resize by" (`scale_by`): each input gets its own size, its sides times the scale (A1111 `to_scale`), floored
  to a multiple of 8 as the pipeline does.
* The UI's Batch tab runs `run_img2img_batch_for_gallery`: the per-file results joined into one result whose
  first `img2img_batch_show_results_limit` images go to the gallery (A1111 1.10: -1 = all, 0 = none).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from modules.images import save_image_with_geninfo
from modules.processing.context import AppContext, GenerationResult
from modules.processing.params import Img2ImgParams
from modules.processing.run import run_img2img
from modules.runtime.job_state import Interrupted

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".avif")


@dataclass
class Img2ImgBatchSpec:
    """The Batch tab's folder fields (A1111 `img2img_batch_input_dir`, `_output_dir`, `_inpaint_mask_dir`)."""

    input_dir: str
    output_dir: str = ""
    inpaint_mask_dir: str = ""
    scale_by: float | None = None


@dataclass
class Img2ImgBatchResult:
    """Per-input results (input path → result), the written files, and notices (skipped inputs, errors)."""

    results: dict[str, Any] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def list_images(folder: str | Path) -> list[Path]:
    """Image files of a folder, sorted by name (A1111 `shared.listfiles` + image extension filter)."""
    path = Path(folder)
    if not path.is_dir():
        raise ValueError(f"img2img batch: {folder!r} is not a folder")
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _mask_for(image: Path, masks: list[Path]) -> Path | None:
    if len(masks) == 1:
        return masks[0]
    return next((m for m in masks if m.stem == image.stem), None)


def run_img2img_batch(ctx: AppContext, params: Img2ImgParams, spec: Img2ImgBatchSpec, job: Any
                      ) -> Img2ImgBatchResult:
    """Run `params` once per input image of `spec.input_dir` (see module docstring)."""
    inputs = list_images(spec.input_dir)
    masks = list_images(spec.inpaint_mask_dir) if spec.inpaint_mask_dir else []
    out_dir = Path(spec.output_dir) if spec.output_dir else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    outcome = Img2ImgBatchResult()
    for path in inputs:
        if job.state.should_stop:
            break
        mask = None
        if masks:
            mask_path = _mask_for(path, masks)
            if mask_path is None:
                outcome.notices.append(f"mask not found for {path.name} in {spec.inpaint_mask_dir}; skipped")
                continue
            mask = Image.open(mask_path)
            mask.load()
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened).copy()
        width, height = params.width, params.height
        if spec.scale_by:
            width = max(64, int(image.width * spec.scale_by) // 8 * 8)
            height = max(64, int(image.height * spec.scale_by) // 8 * 8)
        p = dataclasses.replace(params, width=width, height=height, init_images=[image] * params.batch_size,
                                override_settings=_named_after(ctx, params, path),
                                mask=mask if mask is not None else params.mask,
                                do_not_save_samples=params.do_not_save_samples or out_dir is not None,
                                do_not_save_grid=True)
        try:
            result = run_img2img(ctx, p, job)
        except Interrupted:
            break
        except ValueError as exc:
            outcome.notices.append(f"{path.name}: {exc}")
            continue
        outcome.results[str(path)] = result
        # an interrupted file's images are incomplete: written only with `save_incomplete_images` (A1111 `save_samples`)
        incomplete = job.state.interrupted and not params.override_settings.get(
            "save_incomplete_images", ctx.settings.get("save_incomplete_images"))
        if out_dir is not None and not incomplete:
            first = result.index_of_first_image
            for n, (out, info) in enumerate(zip(result.images[first:], result.infotexts[first:], strict=True)):
                target = out_dir / (path.stem + (f"-{n}" if n else "") + path.suffix)
                if out.mode == "RGBA":
                    out = out.convert("RGB")
                save_image_with_geninfo(out, info, target, path.suffix)
                outcome.written.append(str(target))
    return outcome


def _named_after(ctx: AppContext, params: Img2ImgParams, path: Path) -> dict[str, Any]:
    """The job's `override_settings`, with `samples_filename_pattern` set to the input's stem when
    `img2img_batch_use_original_name` is on (see module docstring)."""
    overrides = dict(params.override_settings)
    use_name = overrides.get("img2img_batch_use_original_name", ctx.settings.get("img2img_batch_use_original_name"))
    if use_name:
        several = params.n_iter > 1 or params.batch_size > 1
        overrides["samples_filename_pattern"] = f"{path.stem}-[generation_number]" if several else path.stem
    return overrides


def run_img2img_batch_for_gallery(ctx: AppContext, params: Img2ImgParams, spec: Img2ImgBatchSpec, *, job: Any,
                                  show_limit: int = 32) -> GenerationResult | None:
    """The Batch tab's job: `run_img2img_batch`, then one result for the gallery (A1111 1.10 `process_batch`
    returns the processed images, the first `img2img_batch_show_results_limit` of them shown; -1 = all).

    None when nothing was processed (interrupted before the first file); a batch whose every file failed raises
    ValueError with the notices, so the UI shows why."""
    outcome = run_img2img_batch(ctx, params, spec, job)
    results = list(outcome.results.values())
    if not results:
        if outcome.notices:
            raise ValueError("; ".join(outcome.notices))
        return None
    images: list[Image.Image] = []
    infotexts: list[str] = []
    for result in results:
        first = result.index_of_first_image
        images += result.images[first:]
        infotexts += result.infotexts[first:]
    if show_limit >= 0:
        images, infotexts = images[:show_limit], infotexts[:show_limit]
    notices = list(outcome.notices) + [n for r in results for n in r.notices]
    return dataclasses.replace(
        results[0], images=images, infotexts=infotexts, index_of_first_image=0,
        all_prompts=[x for r in results for x in r.all_prompts],
        all_negative_prompts=[x for r in results for x in r.all_negative_prompts],
        all_seeds=[x for r in results for x in r.all_seeds], all_subseeds=[x for r in results for x in r.all_subseeds],
        notices=notices, saved_paths=[x for r in results for x in r.saved_paths] + outcome.written,
        time_taken=sum(r.time_taken for r in results),
        peak_memory_bytes=max(r.peak_memory_bytes for r in results))
