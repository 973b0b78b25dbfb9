"""Saving generated images the way A1111 does (`modules/images.py::save_image`), with atomic writes.

Layout with default settings: `outputs/txt2img-images/2024-05-01/00042-1234567.png`,
`outputs/txt2img-grids/2024-05-01/grid-0007.png` (img2img-images / img2img-grids / extras-images likewise).

* Folder: `directories_filename_pattern` ("[date]"; "[prompt_words]" when empty) below the output folder when
  `save_to_dirs` (`grid_save_to_dirs` for grids).
* Name: `samples_filename_pattern`, or "[seed]" when saving to dirs / "[seed]-[prompt_spaces]" otherwise, plus
  `suffix`; with `save_images_add_number` (or an empty name) it is prefixed by a sequence number: 5 digits for
  samples ("00042-…"), "grid-0007" for grids, continuing after the highest number already in the folder.
* Every file (image, downscaled .jpg, .txt) is written to a temporary file in the same folder, flushed and synced,
  then moved into place with `os.replace`, so a crash never leaves a partly written file under the final name.

Settings are passed in as a mapping (a snapshot of `config.json` values, plus the command-line options
`filenames_max_length` and `unix_filenames_sanitization`); missing keys take A1111's defaults from `SAVING_DEFAULTS`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from PIL import Image

from modules.images.filenames import (
    DEFAULT_FILENAMES_MAX_LENGTH,
    FilenameGenerator,
    FilenameJob,
    get_next_sequence_number,
    truncate_filename,
)
from modules.images.metadata import save_image_with_geninfo

# A1111 defaults of the settings used here (Settings → Saving images/grids, Paths for saving, Saving to a directory).
SAVING_DEFAULTS: dict[str, Any] = {
    "samples_save": True,
    "samples_format": "png",
    "samples_filename_pattern": "",
    "save_images_add_number": True,
    "save_images_replace_action": "Replace",
    "grid_save": True,
    "grid_format": "png",
    "grid_extended_filename": False,
    "grid_only_if_multiple": True,
    "enable_pnginfo": True,
    "save_txt": False,
    "jpeg_quality": 80,
    "webp_lossless": False,
    "export_for_4chan": True,
    "img_downscale_threshold": 4.0,
    "target_side_length": 4000.0,
    "save_to_dirs": True,
    "grid_save_to_dirs": True,
    "directories_filename_pattern": "[date]",
    "directories_max_prompt_words": 8,
    "outdir_samples": "",
    "outdir_txt2img_samples": "outputs/txt2img-images",
    "outdir_img2img_samples": "outputs/img2img-images",
    "outdir_extras_samples": "outputs/extras-images",
    "outdir_grids": "",
    "outdir_txt2img_grids": "outputs/txt2img-grids",
    "outdir_img2img_grids": "outputs/img2img-grids",
    "outdir_save": "log/images",
    "outdir_init_images": "outputs/init-images",
    "filenames_max_length": DEFAULT_FILENAMES_MAX_LENGTH,
    "unix_filenames_sanitization": False,
}

# (override setting, per-tab setting) for each kind of output folder
_OUTPUT_DIR_SETTINGS: dict[tuple[str, bool], tuple[str, str]] = {
    ("txt2img", False): ("outdir_samples", "outdir_txt2img_samples"),
    ("img2img", False): ("outdir_samples", "outdir_img2img_samples"),
    ("extras", False): ("outdir_samples", "outdir_extras_samples"),
    ("txt2img", True): ("outdir_grids", "outdir_txt2img_grids"),
    ("img2img", True): ("outdir_grids", "outdir_img2img_grids"),
}

JPEG_MAX_SIDE = 65535
WEBP_MAX_SIDE = 16383


def setting(settings: Mapping[str, Any] | None, key: str) -> Any:
    """Value of `key` in the settings snapshot, else A1111's default; None/"" strings keep their meaning."""
    if settings is not None and key in settings:
        return settings[key]
    return SAVING_DEFAULTS[key]


def output_dir(kind: str, settings: Mapping[str, Any] | None = None, *, grid: bool = False,
               base_dir: str | os.PathLike[str] = ".") -> Path:
    """Output folder for "txt2img", "img2img" or "extras" samples, or txt2img/img2img grids.

    A1111: `outdir_samples` (for grids `outdir_grids`) overrides the per-tab folders when not empty; relative paths
    are taken from `base_dir` (the data directory).
    """
    try:
        override_key, tab_key = _OUTPUT_DIR_SETTINGS[(kind, grid)]
    except KeyError:
        raise ValueError(f"no output folder for kind={kind!r} grid={grid}; use txt2img, img2img or extras") from None
    folder = setting(settings, override_key) or setting(settings, tab_key)
    return Path(base_dir) / folder


@dataclass
class SavedImage:
    """Files written by `save_image` (A1111 returns (fullfn, txt_fullfn))."""

    path: Path
    txt_path: Path | None = None
    extra_paths: list[Path] = field(default_factory=list)


def atomic_write(final_path: str | os.PathLike[str], write: Callable[[IO[bytes]], object], *,
                 replace_existing: bool = True) -> Path:
    """Write a file through a temporary file in the same folder, then rename it into place.

    The temporary name is hidden (".name.<random>.tmp"), created with the usual permissions (0666 minus umask), and
    is removed again if `write` fails.  With `replace_existing=False` an existing file is kept and a free name
    "stem-1.ext", "stem-2.ext", … is used (A1111's "Add number suffix" replace action).  Returns the final path.
    """
    final = Path(final_path)
    tmp = final.with_name(f".{final.stem[:64]}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if not replace_existing:
            n = 0
            candidate = final
            while candidate.exists():
                n += 1
                candidate = final.with_name(f"{final.stem}-{n}{final.suffix}")
            final = candidate
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return final


def save_image(
    image: Image.Image,
    path: str | os.PathLike[str],
    basename: str = "",
    *,
    settings: Mapping[str, Any] | None = None,
    seed: int | None = None,
    prompt: str | None = None,
    extension: str | None = None,
    info: str | None = None,
    short_filename: bool = False,
    no_prompt: bool = False,
    grid: bool = False,
    pnginfo_section_name: str = "parameters",
    job: FilenameJob | None = None,
    existing_info: Mapping[str, Any] | None = None,
    forced_filename: str | None = None,
    suffix: str = "",
    save_to_dirs: bool | None = None,
    now: dt.datetime | None = None,
) -> SavedImage:
    """Save one image with its infotext, following A1111 `images.save_image` (see module docstring).

    `path` is the output folder (see `output_dir`), `basename` "" for samples or "grid" for grids, `info` the
    infotext, `job` what the filename tokens refer to.  `extension` defaults to `samples_format` (`grid_format` for
    grids); JPEG larger than 65535 px or WebP larger than 16383 px falls back to PNG.  With `export_for_4chan`, a
    PNG/WebP bigger than `img_downscale_threshold` MB or with a side above `target_side_length` also gets a
    downscaled ".jpg"; with `save_txt` the infotext is written to a ".txt" beside the image.
    """
    extension = (extension or setting(settings, "grid_format" if grid else "samples_format")).lstrip(".").lower()
    if (extension in ("jpg", "jpeg") and max(image.size) > JPEG_MAX_SIDE) or (extension == "webp" and max(image.size) > WEBP_MAX_SIDE):
        extension = "png"
    namegen = FilenameGenerator(
        job, seed, prompt, image, basename=basename,
        max_prompt_words=int(setting(settings, "directories_max_prompt_words")),
        filenames_max_length=int(setting(settings, "filenames_max_length")),
        unix_filenames_sanitization=bool(setting(settings, "unix_filenames_sanitization")),
        now=now,
    )
    folder = Path(path)
    if save_to_dirs is None:
        save_to_dirs = (grid and setting(settings, "grid_save_to_dirs")) or (
            not grid and setting(settings, "save_to_dirs") and not no_prompt)
    if save_to_dirs:
        dirname = namegen.apply(setting(settings, "directories_filename_pattern") or "[prompt_words]")
        folder = folder / confined_subpath(dirname.lstrip(" ").rstrip("\\ /"))
    folder.mkdir(parents=True, exist_ok=True)

    stem = forced_filename if forced_filename is not None else _numbered_stem(
        namegen, folder, basename, seed, short_filename, suffix, settings)
    stem = truncate_filename(confined_name(stem), f".{extension}", folder)
    final = folder / f"{stem}.{extension}"

    chunks = dict(existing_info or {})
    if info is not None:
        chunks[pnginfo_section_name] = info
    geninfo = chunks.get(pnginfo_section_name)
    replace = setting(settings, "save_images_replace_action") == "Replace"

    def write_image(img: Image.Image, ext: str) -> Callable[[IO[bytes]], None]:
        return lambda fh: save_image_with_geninfo(
            img, geninfo, fh, f".{ext}", existing_pnginfo=chunks, pnginfo_section_name=pnginfo_section_name,
            enable_pnginfo=bool(setting(settings, "enable_pnginfo")),
            jpeg_quality=int(setting(settings, "jpeg_quality")), webp_lossless=bool(setting(settings, "webp_lossless")))

    final = atomic_write(final, write_image(image, extension), replace_existing=replace)
    result = SavedImage(final)

    if setting(settings, "export_for_4chan") and extension not in ("jpg", "jpeg"):
        downscaled = _downscale_for_4chan(image, final, settings)
        if downscaled is not None:
            result.extra_paths.append(atomic_write(final.with_suffix(".jpg"), write_image(downscaled, "jpg"),
                                                   replace_existing=replace))

    if setting(settings, "save_txt") and geninfo is not None:
        data = f"{geninfo}\n".encode()
        result.txt_path = atomic_write(final.with_suffix(".txt"), lambda fh: fh.write(data))
    return result


_CONTROL_CHARS = {code: None for code in range(32)} | {0x7F: None}


def confined_name(stem: str) -> str:
    """A file name from a filename pattern that cannot leave its folder: control characters (NUL included, which
    the OS refuses) removed, path separators replaced by `_` (A1111 joins the pattern's text unchecked, so
    `../../x` in `samples_filename_pattern` wrote outside the outputs)."""
    cleaned = stem.translate(_CONTROL_CHARS).replace("/", "_").replace("\\", "_")
    return "_" if cleaned in ("", ".", "..") else cleaned


def confined_subpath(relative: str) -> str:
    """A folder path from `directories_filename_pattern`: sub-folders kept, but `..`, `.`, empty and absolute parts
    dropped and control characters removed, so it always stays inside the output folder."""
    parts = [part.translate(_CONTROL_CHARS) for part in relative.replace("\\", "/").split("/")]
    return "/".join(part for part in parts if part not in ("", ".", "..")) or "_"


def _numbered_stem(namegen: FilenameGenerator, folder: Path, basename: str, seed: int | None,
                   short_filename: bool, suffix: str, settings: Mapping[str, Any] | None) -> str:
    """File name without extension: pattern, suffix and A1111's sequence number ("00042-…" / "grid-0007")."""
    if short_filename or seed is None:
        decoration = ""
    elif setting(settings, "save_to_dirs"):
        decoration = setting(settings, "samples_filename_pattern") or "[seed]"
    else:
        decoration = setting(settings, "samples_filename_pattern") or "[seed]-[prompt_spaces]"
    decoration = namegen.apply(decoration) + suffix
    add_number = bool(setting(settings, "save_images_add_number")) or decoration == ""
    if not add_number:
        return decoration
    if decoration:
        decoration = f"-{decoration}"
    base = get_next_sequence_number(folder, basename)
    existing = set(os.listdir(folder))
    for i in range(500):
        number = f"{base + i:05}" if basename == "" else f"{basename}-{base + i:04}"
        if not any(name.startswith(f"{number}{decoration}.") for name in existing):
            return f"{number}{decoration}"
    return f"{number}{decoration}"


def _downscale_for_4chan(image: Image.Image, saved: Path, settings: Mapping[str, Any] | None) -> Image.Image | None:
    """The image for the extra ".jpg" of `export_for_4chan`, or None when the saved file is small enough."""
    target = float(setting(settings, "target_side_length"))
    oversize = image.width > target or image.height > target
    too_heavy = saved.stat().st_size > float(setting(settings, "img_downscale_threshold")) * 1024 * 1024
    if not (oversize or too_heavy):
        return None
    if not oversize:
        return image
    if image.width > image.height:
        size = (round(target), round(image.height * target / image.width))
    else:
        size = (round(image.width * target / image.height), round(target))
    return image.resize(size, Image.Resampling.LANCZOS)


def save_grid(
    grid_image: Image.Image,
    path: str | os.PathLike[str],
    *,
    settings: Mapping[str, Any] | None = None,
    seed: int | None = None,
    prompt: str | None = None,
    info: str | None = None,
    job: FilenameJob | None = None,
    now: dt.datetime | None = None,
) -> SavedImage:
    """Save a grid as A1111's processing does: basename "grid", `grid_format`, short name unless
    `grid_extended_filename`."""
    return save_image(grid_image, path, "grid", settings=settings, seed=seed, prompt=prompt, info=info, job=job,
                      extension=setting(settings, "grid_format"), grid=True,
                      short_filename=not setting(settings, "grid_extended_filename"), now=now)


def write_params_txt(data_dir: str | os.PathLike[str], infotext: str) -> Path:
    """`params.txt` in the data folder: the infotext of the first image of the last job (atomic write)."""
    data = infotext.encode("utf-8")
    return atomic_write(Path(data_dir) / "params.txt", lambda fh: fh.write(data))
