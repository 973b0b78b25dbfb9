"""Preprocess images (the Train tab sub-tab of A1111 1.0–1.6): a folder of images → a training dataset folder.

A1111 behaviour implemented (A1111 1.6 ``textual_inversion/preprocess.py``; reference §3.4/§3.7):

* Every image in the source directory (not recursive; unreadable files are skipped) is EXIF-transposed and made
  RGB. Its existing caption is the same-named ``.txt`` file beside it. Source and destination must differ.
* Per image, in this order: "Split oversized images" (when the aspect mismatch ``ratio <= threshold``), "Auto focal
  point crop" (non-square images), "Auto-sized crop", "Keep original size" — each one that applies saves its
  result(s); when none applied, the image is cropped and resized to width × height (A1111 ``resize_image`` mode 1).
  Crop rules: :mod:`modules.training.autocrop`.
* Each result is saved as ``<dst>/<index:05>-<subindex>-<source stem>.png``; with "Create flipped copies" a
  mirrored copy follows with the next subindex. The caption: BLIP (here the CLIP interrogator, whose answer starts
  with the BLIP caption; the app's interrogator has no caption-only call) and/or DeepBooru tags, joined by ", ";
  then the existing caption action: ``ignore``, ``copy`` (the existing caption replaces it), ``prepend``
  (``existing caption``), ``append`` (``caption existing``). A non-empty caption is written to ``<same name>.txt``.
* Runs on the job queue with progress per image; Interrupt stops after the current image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps

from modules.postprocessing.captions import combine_caption
from modules.processing.context import AppContext
from modules.processing.image_ops import resize_image
from modules.runtime.jobs import Interrupted, Job
from modules.training.autocrop import (
    MULTICROP_OBJECTIVES,
    FocalSettings,
    aspect_mismatch,
    best_size,
    center_crop,
    focal_crop,
    split_image,
)
from modules.training.ti_dataset import IMAGE_SUFFIXES, TrainingError

CAPTION_ACTIONS = ("ignore", "copy", "prepend", "append")


@dataclass
class PreprocessOptions:
    """The sub-tab's fields (A1111 ``preprocess`` argument names and defaults)."""

    process_src: str
    process_dst: str
    process_width: int = 512
    process_height: int = 512
    preprocess_txt_action: str = "ignore"
    process_keep_original_size: bool = False
    process_flip: bool = False
    process_split: bool = False
    process_caption: bool = False
    process_caption_deepbooru: bool = False
    split_threshold: float = 0.5
    overlap_ratio: float = 0.2
    process_focal_crop: bool = False
    process_focal_crop_face_weight: float = 0.9
    process_focal_crop_entropy_weight: float = 0.15
    process_focal_crop_edges_weight: float = 0.5
    process_focal_crop_debug: bool = False
    process_multicrop: bool = False
    process_multicrop_mindim: int = 384
    process_multicrop_maxdim: int = 768
    process_multicrop_minarea: int = 64 * 64
    process_multicrop_maxarea: int = 640 * 640
    process_multicrop_objective: str = "Maximize area"
    process_multicrop_threshold: float = 0.1


@dataclass
class PreprocessResult:
    """What was written."""

    images: list[Path] = field(default_factory=list)
    captions: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def info(self) -> str:
        """The outcome line."""
        text = f"Preprocessing {'interrupted' if self.interrupted else 'finished'}: {len(self.images)} images"
        return text + (f", skipped: {', '.join(self.skipped)}" if self.skipped else "")


def _check(options: PreprocessOptions) -> tuple[Path, Path]:
    src, dst = Path(options.process_src or "").expanduser(), Path(options.process_dst or "").expanduser()
    if not str(options.process_src).strip() or not src.is_dir():
        raise TrainingError(f"Source directory {options.process_src!r} does not exist")
    if not str(options.process_dst).strip():
        raise TrainingError("Destination directory is empty")
    if src.resolve() == dst.resolve():
        raise TrainingError("Source and destination are the same directory")
    if not (8 <= int(options.process_width) <= 4096 and 8 <= int(options.process_height) <= 4096):
        raise TrainingError("Width and height must be 8–4096")
    if options.preprocess_txt_action not in CAPTION_ACTIONS:
        raise TrainingError(f"Existing caption action must be one of {', '.join(CAPTION_ACTIONS)}")
    if options.process_multicrop and options.process_multicrop_objective not in MULTICROP_OBJECTIVES:
        raise TrainingError(f"Auto-sized crop objective must be one of {', '.join(MULTICROP_OBJECTIVES)}")
    if options.process_multicrop and options.process_multicrop_mindim > options.process_multicrop_maxdim:
        raise TrainingError("Auto-sized crop: the minimum dimension is larger than the maximum")
    return src, dst


class _Writer:
    """Saves results with A1111's names and captions."""

    def __init__(self, ctx: AppContext, options: PreprocessOptions, dst: Path, result: PreprocessResult) -> None:
        self.ctx, self.options, self.dst, self.result = ctx, options, dst, result

    def caption(self, image: Image.Image, existing: str | None) -> str:
        parts = []
        if self.options.process_caption:
            parts.append(self.ctx.interrogators.interrogate(image, "clip"))
        if self.options.process_caption_deepbooru:
            parts.append(self.ctx.interrogators.interrogate(image, "deepdanbooru"))
        return combine_caption(", ".join(p for p in parts if p), existing, self.options.preprocess_txt_action)

    def save(self, image: Image.Image, index: int, subindex: list[int], stem: str, existing: str | None) -> None:
        images = [image, ImageOps.mirror(image)] if self.options.process_flip else [image]
        for picture in images:
            base = self.dst / f"{index:05}-{subindex[0]}-{stem}"
            caption = self.caption(picture, existing)
            picture.save(base.with_suffix(".png"))
            self.result.images.append(base.with_suffix(".png"))
            if caption:
                base.with_suffix(".txt").write_text(caption, encoding="utf-8")
                self.result.captions.append(base.with_suffix(".txt"))
            subindex[0] += 1


def preprocess_job(ctx: AppContext, options: PreprocessOptions, *, job: Job) -> PreprocessResult:
    """Preprocess every image of the source directory (rules in the module docstring)."""
    src, dst = _check(options)
    dst.mkdir(parents=True, exist_ok=True)
    width, height = int(options.process_width), int(options.process_height)
    files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    result = PreprocessResult()
    writer = _Writer(ctx, options, dst, result)
    job.state.set_job_count(len(files))
    job.state.set_sampling_steps(len(files))
    threshold = max(0.0, min(1.0, float(options.split_threshold)))
    try:
        for index, path in enumerate(files):
            job.state.check()
            job.state.set_textinfo(f"Preprocessing [Image {index}/{len(files)}]")
            try:
                with Image.open(path) as opened:
                    image = ImageOps.exif_transpose(opened).convert("RGB")
            except OSError:
                result.skipped.append(path.name)
                continue
            sidecar = path.with_suffix(".txt")
            existing = sidecar.read_text(encoding="utf-8", errors="replace") if sidecar.is_file() else None
            subindex = [0]
            default = True
            ratio, _tall = aspect_mismatch(image, width, height)
            if options.process_split and ratio < 1.0 and ratio <= threshold:
                for piece in split_image(image, width, height, float(options.overlap_ratio)):
                    writer.save(piece, index, subindex, path.stem, existing)
                default = False
            if options.process_focal_crop and image.width != image.height:
                focal = FocalSettings(width, height, float(options.process_focal_crop_face_weight),
                                      float(options.process_focal_crop_entropy_weight),
                                      float(options.process_focal_crop_edges_weight),
                                      bool(options.process_focal_crop_debug))
                for piece in focal_crop(image, focal):
                    writer.save(piece, index, subindex, path.stem, existing)
                default = False
            if options.process_multicrop:
                size = best_size(image.width, image.height, int(options.process_multicrop_mindim),
                                 int(options.process_multicrop_maxdim), int(options.process_multicrop_minarea),
                                 int(options.process_multicrop_maxarea), options.process_multicrop_objective,
                                 float(options.process_multicrop_threshold))
                if size is not None:
                    writer.save(center_crop(image, *size), index, subindex, path.stem, existing)
                else:
                    result.skipped.append(f"{path.name} (no size within the error threshold)")
                default = False
            if options.process_keep_original_size:
                writer.save(image, index, subindex, path.stem, existing)
                default = False
            if default:
                writer.save(resize_image(1, image, width, height), index, subindex, path.stem, existing)
            job.state.step(index + 1)
            job.state.next_job()
    except Interrupted:
        result.interrupted = True
    return result
