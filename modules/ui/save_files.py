"""💾 Save and 🗃️ Zip under the txt2img/img2img galleries (A1111 `ui_common.save_files`).

A1111 behaviour followed here:
- images go to `outdir_save` (default `log/images`, relative to the data directory); with
  `use_save_to_dirs_for_ui` into the `directories_filename_pattern` sub-folder; format `samples_format`; each file
  carries its own infotext;
- with `save_selected_only` (default on) and a selected non-grid image, 💾 saves only that image; otherwise every
  image of the job (the grid included);
- `log.csv` in `outdir_save` gets a header row when new and, with `save_write_log_csv`, one row per click: prompt,
  seed, width, height, sampler, cfgs, steps, filename, negative_prompt, sd_model_name, sd_model_hash (values of the
  first saved image). Cells are neutralised against spreadsheet formulas (`csv_escape`; A1111 writes them raw);
- 🗃️ writes the images and a `.zip` of them named by `grid_zip_filename_pattern` (default
  `[datetime]_[[model_name]]_[seed]-[seed_last]`); here the zip always holds every image of the job;
- the written files are offered as download links and the log area says "Saved: <first file>".
"""

from __future__ import annotations

import csv
import html
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from modules.images import FilenameGenerator, FilenameJob, save_image, split_infotext
from modules.images.saving import confined_name
from modules.processing.context import AppContext
from modules.prompts.styles import csv_escape
from modules.ui.gallery import OutputPanel, gallery_item

LOG_FIELDS = ("prompt", "seed", "width", "height", "sampler", "cfgs", "steps", "filename", "negative_prompt",
              "sd_model_name", "sd_model_hash")
DEFAULT_ZIP_PATTERN = "[datetime]_[[model_name]]_[seed]-[seed_last]"


class NothingToSave(ValueError):
    """The gallery holds no images of a finished job."""


@dataclass
class SavedFiles:
    """What a click wrote: image files (and the zip first, when made), names relative to `outdir_save`."""

    files: list[Path]
    names: list[str]
    zip_path: Path | None = None

    def message_html(self) -> str:
        return f"<p>Saved: {html.escape(self.names[0])}</p>" if self.names else ""


def gallery_paths(gallery_value: Any) -> list[str]:
    """File paths of the gallery's entries (Gradio gives (path, caption) pairs or file dicts)."""
    items = (gallery_item(entry) for entry in list(gallery_value or []))
    return [str(item) for item in items if item is not None]


def _settings(ctx: AppContext) -> dict[str, Any]:
    from modules.processing.save_outputs import flag_saving_options

    return {**dict(ctx.settings.snapshot()), **flag_saving_options(ctx.flags)}


def _seed(fields: Mapping[str, str], fallback: Any) -> int | None:
    try:
        return int(fields.get("Seed", fallback))
    except (TypeError, ValueError):
        return None


def save_files(ctx: AppContext, generation_info: str, gallery_value: Any, make_zip: bool,
               index: int | float | None) -> SavedFiles:
    """Save the gallery's images as A1111's 💾 / 🗃️ buttons do (see the module docstring)."""
    try:
        data: dict[str, Any] = json.loads(generation_info or "{}")
    except ValueError:
        data = {}
    paths = gallery_paths(gallery_value)
    infotexts: list[str] = list(data.get("infotexts") or [])
    if not paths or not data:
        raise NothingToSave("Nothing to save: generate images first")
    settings = _settings(ctx)
    first_image = int(data.get("index_of_first_image") or 0)
    selected = -1 if index is None else int(index)
    start = 0
    if not make_zip and selected >= first_image and settings.get("save_selected_only") and selected < len(paths):
        paths, start = [paths[selected]], selected
    folder = Path(ctx.paths.data_dir) / str(settings.get("outdir_save") or "log/images")
    folder.mkdir(parents=True, exist_ok=True)
    job = FilenameJob(prompt=str(data.get("prompt") or ""), negative_prompt=str(data.get("negative_prompt") or ""),
                      steps=data.get("steps"), cfg_scale=data.get("cfg_scale"),
                      sampler_name=data.get("sampler_name"), model_name=data.get("sd_model_name"),
                      model_hash=data.get("sd_model_hash"), batch_size=max(1, int(data.get("batch_size") or 1)),
                      all_seeds=list(data.get("all_seeds") or []), job_timestamp=data.get("job_timestamp"))
    parsed: list[tuple[str, str, dict[str, str]]] = []
    files: list[Path] = []
    names: list[str] = []
    for image_index, source in enumerate(paths, start):
        text = infotexts[image_index] if image_index < len(infotexts) else ""
        prompt, negative, fields = split_infotext(text) if text else ("", "", {})
        parsed.append((prompt, negative, fields))
        with Image.open(source) as opened:
            image = opened.copy()
        is_grid = image_index < first_image
        job.batch_index = max(0, image_index - first_image)
        saved = save_image(image, folder, "", settings=settings, seed=_seed(fields, data.get("seed")),
                           prompt=prompt, info=text or None, grid=is_grid, job=job,
                           save_to_dirs=bool(settings.get("use_save_to_dirs_for_ui")))
        files.append(saved.path)
        names.append(saved.path.relative_to(folder).as_posix())
        if saved.txt_path is not None:
            files.append(saved.txt_path)
            names.append(saved.txt_path.relative_to(folder).as_posix())
    _append_log(folder / "log.csv", settings, data, parsed[0], names[0])
    result = SavedFiles(files, names)
    if make_zip:
        result.zip_path = _write_zip(folder, settings, job, parsed, files, names)
        result.files.insert(0, result.zip_path)
    return result


def _append_log(target: Path, settings: Mapping[str, Any], data: Mapping[str, Any],
                first: tuple[str, str, dict[str, str]], filename: str) -> None:
    """A1111 writes the header whenever log.csv is new, and a row only with `save_write_log_csv`."""
    new = not target.exists() or target.stat().st_size == 0
    if not new and not settings.get("save_write_log_csv"):
        return
    prompt, negative, fields = first
    with target.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(LOG_FIELDS)
        if settings.get("save_write_log_csv"):
            row: Sequence[Any] = (prompt, fields.get("Seed", data.get("seed", "")), data.get("width", ""),
                                  data.get("height", ""), data.get("sampler_name", ""), data.get("cfg_scale", ""),
                                  data.get("steps", ""), filename, negative, data.get("sd_model_name", ""),
                                  data.get("sd_model_hash", ""))
            writer.writerow([csv_escape("" if cell is None else str(cell)) for cell in row])


def _write_zip(folder: Path, settings: Mapping[str, Any], job: FilenameJob,
               parsed: list[tuple[str, str, dict[str, str]]], files: list[Path], names: list[str]) -> Path:
    """The archive of the saved files, named by `grid_zip_filename_pattern` (seeds of the saved images)."""
    seeds = [s for s in (_seed(fields, None) for _, _, fields in parsed) if s is not None]
    job.all_seeds, job.batch_size = seeds or list(job.all_seeds), max(1, len(seeds))
    namegen = FilenameGenerator(job, seeds[0] if seeds else None, parsed[0][0], None, zip=True,
                                filenames_max_length=int(settings.get("filenames_max_length") or 128),
                                unix_filenames_sanitization=bool(settings.get("unix_filenames_sanitization")))
    stem = confined_name(namegen.apply(str(settings.get("grid_zip_filename_pattern") or DEFAULT_ZIP_PATTERN)))
    target = folder / f"{stem}.zip"
    with zipfile.ZipFile(target, "w") as archive:
        for path, name in zip(files, names, strict=True):
            archive.write(path, name)
    return target


def wire_save_buttons(ctx: AppContext, panel: OutputPanel) -> None:
    """💾 / 🗃️ click → save, show the download links and "Saved: …" in the log area (A1111 `html_log`)."""

    def run(make_zip: bool, info: str, gallery_value: Any, index: Any) -> tuple[Any, str]:
        try:
            saved = save_files(ctx, info, gallery_value, make_zip, index)
        except NothingToSave as exc:
            raise gr.Error(str(exc)) from None
        except OSError as exc:
            raise gr.Error(f"Could not save: {exc}") from None
        return gr.update(value=[str(p) for p in saved.files], visible=True), saved.message_html()

    inputs = [panel.generation_info, panel.gallery, panel.selected_index]
    outputs = [panel.download_files, panel.html_log]
    panel.save.click(lambda *a: run(False, *a), inputs, outputs, show_progress="hidden")
    panel.save_zip.click(lambda *a: run(True, *a), inputs, outputs, show_progress="hidden")
