"""The Extras chain: upscale (upscaler 1 + blended upscaler 2), then face restorers, with A1111's infotext and saving.

A1111 facts (reference §3.4, §12; `modules/postprocessing.py`, `scripts/postprocessing_upscale.py`,
`postprocessing_gfpgan.py`, `postprocessing_codeformer.py`):
- Operations run in `postprocessing_operation_order` (names listed there first), then by their `order`: Upscale
  1000, GFPGAN 2000, CodeFormer 3000; names in `postprocessing_disable_in_extras` are skipped. `upscale_first` of
  the old API is accepted and ignored, as in A1111 1.10.
- Upscale: "Scale by" (`resize_mode` 0) records "Postprocess upscale by"; a `max_side_length` that the scaled image
  would exceed switches to scale-to of the largest size within it, without crop ("Max side length"). "Scale to"
  (1) uses factor `max(W/w, H/h)` ("Postprocess upscale to: WxH") and, with crop, centres the result on a W×H
  canvas ("Postprocess crop to"). Upscaler 1 "None" means no upscaling at all; upscaler 2 (if not "None" and
  visibility > 0) is blended in with `Image.blend(up1, up2, visibility)` ("Postprocess upscaler 2").
- Face restorers: skipped at visibility 0; "GFPGAN visibility", "CodeFormer visibility", "CodeFormer weight".
- Infotext: `", ".join(k if k == v else f"{k}: {quote(v)}")`; it goes into the image's `postprocessing` text chunk
  and the file is saved with `pnginfo_section_name="extras"`, keeping the original `parameters`; html_info is
  `<p>` + escaped text + `</p>` (`plaintext_to_html`). Files go to `outdir_extras_samples`
  (outputs/extras-images) without date subfolders, or to the output directory of "Batch from Directory";
  `use_original_name_batch` keeps a batch image's own file name.
- Extras-tab scripts of extensions (`ScriptPostprocessing`, run through `ExtrasScript` objects) join the chain:
  every script's `process_firstpass(pp)` first (after the upscale's target size is known, `pp.shared`), then all
  operations in the order above; scripts also process the extra images earlier scripts appended (unless
  `disable_processing`), each extra image is a result of its own (file suffix from its `nametags`), and a script's
  `pp.info` entries are part of the infotext.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from modules.postprocessing.face_restorers import FaceRestorerRegistry
from modules.postprocessing.upscalers import UnknownUpscalerError, UpscalerRegistry
from modules.runtime.hook_params import PostprocessedImage

log = logging.getLogger(__name__)

OPERATION_ORDER = {"Upscale": 1000, "GFPGAN": 2000, "CodeFormer": 3000}
"""A1111's built-in postprocessing scripts and their `order`."""

ReadInfo = Callable[[Image.Image], tuple[str | None, dict[str, Any]]]
"""`modules.images.read_info_from_image`-like: (infotext, other metadata items)."""
Saver = Callable[["ExtrasImage"], Path]
"""Writes one result and returns its path (callers use `modules.images.save_image` with `save_kwargs`)."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".avif")


class ExtrasInputError(ValueError):
    """Bad extras input; `field` names the option or request field at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class ExtrasOptions:
    """The Extras parameters (A1111 UI / API names in the comments)."""

    resize_mode: int = 0                   # 0 "Scale by", 1 "Scale to"
    upscaling_resize: float = 2.0          # Resize
    max_side_length: int = 0               # Max side length (0 = no limit)
    upscaling_resize_w: int = 512
    upscaling_resize_h: int = 512
    upscaling_crop: bool = True            # Crop to fit
    upscaler_1: str = "None"
    upscaler_2: str = "None"
    upscaler_2_visibility: float = 0.0     # extras_upscaler_2_visibility
    gfpgan_visibility: float = 0.0
    codeformer_visibility: float = 0.0
    codeformer_weight: float = 0.0
    restore_whole_image: bool = False      # ours: restore faces without a detector on the whole image at 512
    upscale_enabled: bool = True


@dataclass
class ExtrasImage:
    """One processed image: pixels, its `postprocessing` info dict and the text chunks to save with it."""

    image: Image.Image
    info: dict[str, Any]
    name: str | None
    chunks: dict[str, str] = field(default_factory=dict)
    suffix: str = ""
    """File-name suffix of an extra image a script added (`-tag`, from its `nametags`)."""
    caption: str | None = None
    """`pp.caption` a script set: written to `<file>.txt` when saved."""

    @property
    def infotext(self) -> str:
        """A1111's postprocessing infotext ("Postprocess upscale by: 2, Postprocess upscaler: Lanczos")."""
        return infotext_from_info(self.info)


@dataclass
class ExtrasResult:
    """Images to show, the last infotext and its HTML, user notices and the files written."""

    images: list[ExtrasImage]
    infotext: str = ""
    notices: list[str] = field(default_factory=list)
    saved: list[Path] = field(default_factory=list)

    @property
    def html_info(self) -> str:
        """A1111 `plaintext_to_html(infotext)`, followed by notices (face detector limits, skipped files)."""
        parts = [plaintext_to_html(self.infotext)]
        parts += [f"<p class='extras-notice'>{html.escape(n)}</p>" for n in self.notices]
        return "".join(parts)


def plaintext_to_html(text: str) -> str:
    """A1111 `ui_common.plaintext_to_html`: lines escaped and joined with `<br>`, wrapped in `<p>`."""
    return "<p>" + "<br>\n".join(html.escape(line) for line in text.split("\n")) + "</p>"


def quote(value: Any) -> str:
    """A1111 `infotext_utils.quote`: a value containing "," ":" or a newline is written as a JSON string."""
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if ("," in text or "\n" in text or ":" in text) else text


def png_text_info(image: Image.Image) -> tuple[str | None, dict[str, Any]]:
    """Default metadata reader: the PNG `parameters` text chunk and the other string items of `image.info`."""
    items = {k: v for k, v in (image.info or {}).items() if isinstance(k, str) and isinstance(v, str)}
    return items.pop("parameters", None), items


def _display(value: Any) -> Any:
    """Whole floats written without ".0" (slider values 2.0 → 2, as the reference infotext shows)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def infotext_from_info(info: Mapping[str, Any]) -> str:
    """`k` alone when the value equals the key, else `k: quote(v)`; None values are left out (A1111)."""
    return ", ".join(k if k == v else f"{k}: {quote(_display(v))}" for k, v in info.items() if v is not None)


def limit_size_by_one_dimension(w: float, h: float, limit: int) -> tuple[int, int]:
    """A1111 `limit_size_by_one_dimention`: shrink so the longer side equals `limit`, keeping the aspect ratio."""
    if h > w and h > limit:
        w, h = limit * w // h, limit
    elif w > limit:
        w, h = limit, limit * h // w
    return int(w), int(h)


class ExtrasScript(Protocol):
    """An Extras-tab script bound to the arguments of one run (`modules.extensions.scripts_postprocessing`)."""

    @property
    def name(self) -> str: ...

    @property
    def order(self) -> int: ...

    def process_firstpass(self, pp: PostprocessedImage) -> None: ...

    def process(self, pp: PostprocessedImage) -> None: ...


def operation_order(settings: Mapping[str, Any] | None) -> list[str]:
    """Built-in operations in run order: those named in `postprocessing_operation_order` first, then by `order`."""
    return [op for op in operations(settings) if isinstance(op, str)]


def operations(settings: Mapping[str, Any] | None, scripts: Sequence[ExtrasScript] = ()) -> list[str | ExtrasScript]:
    """Built-in operations (by name) and scripts in run order: `postprocessing_operation_order` first, then by
    `order`, then by name (A1111 `scripts_in_preferred_order`); `postprocessing_disable_in_extras` left out."""
    settings = settings or {}
    listed = list(settings.get("postprocessing_operation_order") or [])
    disabled = set(settings.get("postprocessing_disable_in_extras") or [])
    entries: list[tuple[str, int, str | ExtrasScript]] = [(n, o, n) for n, o in OPERATION_ORDER.items()]
    entries += [(s.name, s.order, s) for s in scripts]
    entries.sort(key=lambda e: (listed.index(e[0]) if e[0] in listed else len(listed), e[1], e[0]))
    return [op for name, _, op in entries if name not in disabled]


class ExtrasChain:
    """Runs the Extras operations with an upscaler registry and a face-restorer registry."""

    def __init__(self, upscalers: UpscalerRegistry, face_restorers: FaceRestorerRegistry | None = None, *,
                 read_info: ReadInfo | None = None) -> None:
        self.upscalers = upscalers
        self.face_restorers = face_restorers
        self.read_info = read_info or png_text_info

    def check(self, options: ExtrasOptions) -> None:
        """Validate names and ranges before any work; `ExtrasInputError` names the field."""
        for fld in ("upscaler_1", "upscaler_2"):
            name = getattr(options, fld)
            if name not in (None, "", "None") and name not in self.upscalers:
                try:
                    self.upscalers.get_entry(name)
                except UnknownUpscalerError as exc:
                    raise ExtrasInputError(f"{fld}: {exc}", fld) from None
        if options.resize_mode not in (0, 1):
            raise ExtrasInputError("resize_mode: must be 0 (scale by) or 1 (scale to)", "resize_mode")
        if options.resize_mode == 0 and options.upscaling_resize <= 0:
            raise ExtrasInputError("upscaling_resize: must be greater than 0", "upscaling_resize")
        if options.resize_mode == 1 and (options.upscaling_resize_w < 1 or options.upscaling_resize_h < 1):
            raise ExtrasInputError("upscaling_resize_w/h: must be at least 1", "upscaling_resize_w")
        for fld in ("upscaler_2_visibility", "gfpgan_visibility", "codeformer_visibility", "codeformer_weight"):
            if not 0.0 <= float(getattr(options, fld)) <= 1.0:
                raise ExtrasInputError(f"{fld}: must be between 0 and 1", fld)

    # -- operations ---------------------------------------------------------------------------------------------
    def _upscale_one(self, image: Image.Image, info: dict[str, Any], name: str, o: ExtrasOptions,
                     settings: Mapping[str, Any] | None) -> Image.Image:
        """A1111 `ScriptPostprocessingUpscale.upscale` for one upscaler (records the size entries in `info`)."""
        mode, crop = o.resize_mode, o.upscaling_crop
        width, height = int(o.upscaling_resize_w), int(o.upscaling_resize_h)
        if mode == 1:
            scale = max(width / image.width, height / image.height)
            info["Postprocess upscale to"] = f"{width}x{height}"
        else:
            scale = float(o.upscaling_resize)
            info["Postprocess upscale by"] = scale
            if o.max_side_length and max(*image.size) * scale > o.max_side_length:
                mode, crop = 1, False
                width, height = limit_size_by_one_dimension(image.width * scale, image.height * scale,
                                                            int(o.max_side_length))
                scale = max(width / image.width, height / image.height)
                info["Max side length"] = int(o.max_side_length)
        result = self.upscalers.upscale(image, scale, name, settings)
        if mode == 1 and crop:
            canvas = Image.new("RGB", (width, height))
            canvas.paste(result, (width // 2 - result.width // 2, height // 2 - result.height // 2))
            result = canvas
            info["Postprocess crop to"] = f"{result.width}x{result.height}"
        return result

    def upscale(self, image: Image.Image, info: dict[str, Any], o: ExtrasOptions,
                settings: Mapping[str, Any] | None) -> Image.Image:
        """Upscaler 1, then upscaler 2 blended in by its visibility (A1111 `process`)."""
        if not o.upscale_enabled or o.upscaler_1 in (None, "", "None"):
            return image
        out = self._upscale_one(image, info, o.upscaler_1, o, settings)
        info["Postprocess upscaler"] = o.upscaler_1
        if o.upscaler_2 not in (None, "", "None") and o.upscaler_2_visibility > 0:
            second = self._upscale_one(image, {}, o.upscaler_2, o, settings)
            if second.mode != out.mode:
                second = second.convert(out.mode)
            if second.size != out.size:
                second = second.resize(out.size, Image.Resampling.LANCZOS)
            out = Image.blend(out, second, float(o.upscaler_2_visibility))
            info["Postprocess upscaler 2"] = o.upscaler_2
        return out

    def restore(self, image: Image.Image, info: dict[str, Any], restorer: str, o: ExtrasOptions,
                notices: list[str]) -> Image.Image:
        """GFPGAN or CodeFormer at its visibility (0 = off), recording A1111's info entries."""
        visibility = o.gfpgan_visibility if restorer == "GFPGAN" else o.codeformer_visibility
        if visibility <= 0:
            return image
        if self.face_restorers is None:
            notices.append(f"{restorer}: face restoration is not available")
            return image
        result = self.face_restorers.restore(image, restorer, visibility=visibility,
                                             codeformer_weight=o.codeformer_weight, whole_image=o.restore_whole_image)
        for notice in result.notices:
            if notice not in notices:
                notices.append(notice)
        if result.faces == 0:
            return image
        if restorer == "GFPGAN":
            info["GFPGAN visibility"] = round(visibility, 3)
        else:
            info["CodeFormer visibility"] = round(visibility, 3)
            info["CodeFormer weight"] = round(o.codeformer_weight, 3)
        return result.image

    def process(self, image: Image.Image, options: ExtrasOptions, settings: Mapping[str, Any] | None = None,
                notices: list[str] | None = None, name: str | None = None,
                scripts: Sequence[ExtrasScript] = ()) -> ExtrasImage:
        """Run every enabled operation on one image; keeps its original text chunks (e.g. `parameters`)."""
        return self.process_all(image, options, settings, notices, name, scripts)[0]

    def _target_size(self, image: Image.Image, o: ExtrasOptions) -> tuple[int, int]:
        """The size the upscale is set to produce (A1111's Upscale `process_firstpass` sets `pp.shared` from the
        "Scale by"/"Scale to" fields even when upscaler 1 is "None": split and focal crop use it as their size)."""
        if not o.upscale_enabled:
            return image.width, image.height
        if o.resize_mode == 1:
            return int(o.upscaling_resize_w), int(o.upscaling_resize_h)
        w, h = int(image.width * o.upscaling_resize), int(image.height * o.upscaling_resize)
        if o.max_side_length and max(w, h) > o.max_side_length:
            w, h = limit_size_by_one_dimension(w, h, int(o.max_side_length))
        return w, h

    def process_all(self, image: Image.Image, options: ExtrasOptions, settings: Mapping[str, Any] | None = None,
                    notices: list[str] | None = None, name: str | None = None,
                    scripts: Sequence[ExtrasScript] = ()) -> list[ExtrasImage]:
        """Every operation and script on one image: the image, then the extra images scripts added."""
        notices = [] if notices is None else notices
        parameters, existing = self.read_info(image)
        chunks = {str(k): v for k, v in existing.items() if isinstance(k, str) and isinstance(v, str)}
        if parameters:
            chunks["parameters"] = parameters
        pp = PostprocessedImage(image if image.mode in ("RGB", "RGBA") else image.convert("RGB"))
        pp.shared.target_width, pp.shared.target_height = self._target_size(pp.image, options)
        ordered = operations(settings, scripts)
        for op in ordered:
            if not isinstance(op, str):
                op.process_firstpass(pp)
        images = [pp]
        for op in ordered:
            if op == "Upscale":
                pp.image = self.upscale(pp.image, pp.info, options, settings)
            elif isinstance(op, str):
                pp.image = self.restore(pp.image, pp.info, op, options, notices)
            else:
                for one in list(images):
                    if not one.disable_processing:
                        op.process(one)
                    images += [e if isinstance(e, PostprocessedImage) else one.create_copy(e)
                               for e in one.extra_images]
                    one.extra_images = []
        used: dict[str, int] = {}
        return [ExtrasImage(one.image, one.info, name, dict(chunks), one.get_suffix(used), one.caption)
                for one in images]

    def run(self, sources: Iterable[tuple[Image.Image | Path, str | None]], options: ExtrasOptions, *,
            settings: Mapping[str, Any] | None = None, save: Saver | None = None, show_results: bool = True,
            state: Any = None, scripts: Sequence[ExtrasScript] = ()) -> ExtrasResult:
        """Process several images (A1111 `run_postprocessing`); files that cannot be read are skipped with a notice.

        `sources` yields (image or file path, original name or None). `save` writes each result (see
        `save_kwargs`). `state` (a job state) gets the job count, progress and interrupt checks.
        """
        self.check(options)
        items = list(sources)
        result = ExtrasResult([])
        if state is not None:
            state.set_job_count(len(items))
        for source, name in items:
            if state is not None and getattr(state, "interrupted", False):
                break
            if isinstance(source, Path):
                try:
                    with Image.open(source) as opened:
                        opened.load()
                        image = opened.copy()
                        image.info = dict(opened.info)
                except (OSError, ValueError) as exc:
                    result.notices.append(f"{source.name}: skipped, not a readable image ({exc})")
                    continue
            else:
                image = source
            if state is not None:
                state.set_textinfo(name)
            for done in self.process_all(image, options, settings, result.notices, name, scripts):
                result.infotext = done.infotext
                if save is not None:
                    result.saved.append(save(done))
                if show_results:
                    result.images.append(done)
            if state is not None:
                state.next_job()
        return result


def save_kwargs(done: ExtrasImage, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Keyword arguments for `modules.images.save_image(done.image, folder, **kwargs)` to save like A1111: `postprocessing` and `extras` chunks added to the original ones, no date folder, the original
    name in batch mode (`use_original_name_batch`), "-<upscaler>" suffix with `use_upscaler_name_as_suffix`
    (`save_image` adds the dash after the sequence number)."""
    settings = settings or {}
    suffix = ""
    if settings.get("use_upscaler_name_as_suffix", False) and "Postprocess upscaler" in done.info:
        suffix = str(done.info["Postprocess upscaler"])
    forced = None
    if settings.get("use_original_name_batch", True) and done.name:
        forced = Path(done.name).stem + (f"-{suffix}" if suffix else "") + done.suffix
    elif done.suffix:
        suffix = (suffix + done.suffix) if suffix else done.suffix.removeprefix("-")
    chunks = dict(done.chunks)
    chunks["postprocessing"] = done.infotext
    return {"basename": "", "settings": settings, "info": done.infotext, "short_filename": True, "no_prompt": True,
            "pnginfo_section_name": "extras", "existing_info": chunks, "forced_filename": forced,
            "suffix": "" if forced else suffix, "save_to_dirs": False}


def extras_output_dir(settings: Mapping[str, Any] | None, base_dir: Path, output_dir_override: str = "") -> Path:
    """"Batch from Directory" output dir if given, else `outdir_samples` or `outdir_extras_samples` (A1111)."""
    if output_dir_override:
        path = Path(output_dir_override).expanduser()
        return path if path.is_absolute() else base_dir / path
    settings = settings or {}
    folder = settings.get("outdir_samples") or settings.get("outdir_extras_samples") or "outputs/extras-images"
    path = Path(str(folder)).expanduser()
    return path if path.is_absolute() else base_dir / path


def folder_sources(input_dir: str | Path) -> list[tuple[Path, str]]:
    """Image files of an input directory, sorted (A1111 `shared.listfiles`); `ExtrasInputError` if it is missing."""
    folder = Path(input_dir).expanduser() if input_dir else None
    if folder is None or not folder.is_dir():
        raise ExtrasInputError(f"input directory {str(input_dir)!r} does not exist", "input_dir")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return [(p, p.name) for p in files]
