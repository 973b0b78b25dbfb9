"""The app's interrogators (A1111 `shared.interrogator` and `deepbooru.model`): load on first use, run, release.

A1111 facts: models load lazily on the first interrogation (downloading their weights when missing) and are moved
off the GPU after each run unless `interrogate_keep_models_in_memory`; both interrogators answer with one string
(`/sdapi/v1/interrogate` → `{caption}`, the img2img buttons write it into the prompt). Callers run
:meth:`Interrogators.interrogate` inside the job queue, so only one device user runs at a time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import torch
from PIL import Image

from modules.interrogate.clip_interrogator import (
    ClipOptions,
    blip_caption,
    category_names,
    interrogate_with_clip,
    load_categories,
)
from modules.interrogate.deepbooru import Resizer, TagOptions, tag_image
from modules.interrogate.deepbooru_model import DeepDanbooruModel
from modules.interrogate.weights import (
    BLIP_FILES,
    BLIP_REPO,
    CLIP_FILES,
    CLIP_REPO,
    DEEPBOORU_FILE,
    DEEPBOORU_URL,
    ModelFilesMissing,
    WeightsSource,
    deepbooru_candidates,
    ensure_files,
)
from modules.models.safe_unpickle import load_torch_file
from modules.prompts.tokenizer import ClipTokenizer

__all__ = ["INTERROGATORS", "InterrogateError", "InterrogatorPaths", "Interrogators", "ModelFilesMissing"]

INTERROGATORS = ("clip", "deepdanbooru")
"""The `model` values of `/sdapi/v1/interrogate` (A1111 `interrogateapi`)."""


class InterrogateError(RuntimeError):
    """An interrogation model that is present but cannot be loaded or run; the message says which file."""


class SettingsSource(Protocol):
    """Where the current settings are read (the app's `Settings` store)."""

    def values(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class InterrogatorPaths:
    """Model folders (docs/interrogate.md) and the category lists folder (`interrogate/` of the install)."""

    blip: Path
    clip: Path
    deepbooru: Path
    categories: Path


class Interrogators:
    """CLIP (BLIP + CLIP ranking) and DeepBooru, loaded lazily and kept (off the device unless asked otherwise)."""

    def __init__(self, paths: InterrogatorPaths, settings: SettingsSource, source: WeightsSource,
                 device: torch.device, dtype: torch.dtype, fill: Resizer, *, safe_unpickle: bool) -> None:
        self.paths = paths
        self._settings = settings
        self._source = source
        self.device = device
        self.dtype = dtype if device.type != "cpu" else torch.float32
        self._fill = fill
        self._safe = safe_unpickle
        self._lock = threading.Lock()
        self._blip: tuple[Any, Any] | None = None
        self._clip: Any = None
        self._clip_tokenizer: ClipTokenizer | None = None
        self._deepbooru: DeepDanbooruModel | None = None

    def category_names(self) -> list[str]:
        """Choices of `interrogate_clip_skip_categories` (A1111 `category_types`)."""
        return category_names(self.paths.categories)

    def interrogate(self, image: Image.Image, model: str) -> str:
        """`clip` or `deepdanbooru` on one image. Raises `ValueError` for another name, `ModelFilesMissing` when
        weights are missing and cannot be downloaded, `InterrogateError` for unusable weights."""
        if model not in INTERROGATORS:
            raise ValueError(f"unknown interrogator {model!r}; choose clip or deepdanbooru")
        with self._lock:
            settings = self._settings.values()
            try:
                if model == "clip":
                    return self._run_clip(image, settings)
                return self._run_deepbooru(image, settings)
            finally:
                if not settings.get("interrogate_keep_models_in_memory", False):
                    self._to(torch.device("cpu"))

    # -- CLIP ---------------------------------------------------------------------------------------------------

    def _run_clip(self, image: Image.Image, settings: dict[str, Any]) -> str:
        options = ClipOptions.from_settings(settings)
        blip, blip_tokenizer = self._load_blip()
        blip.to(self.device)
        caption = blip_caption(blip, blip_tokenizer, image, options, self.device, self.dtype)
        if not settings.get("interrogate_keep_models_in_memory", False):
            blip.to("cpu")  # A1111 send_blip_to_ram before CLIP runs
        clip, tokenizer = self._load_clip()
        clip.to(self.device)
        categories = load_categories(self.paths.categories, options.skip_categories)
        return interrogate_with_clip(clip, tokenizer, image, caption, categories, options, self.device, self.dtype)

    def _load_blip(self) -> tuple[Any, Any]:
        if self._blip is None:
            from transformers import AutoTokenizer, BlipForConditionalGeneration

            folder = ensure_files(self.paths.blip, BLIP_FILES, self._source, what="BLIP caption model",
                                  repo=BLIP_REPO)
            try:
                model = BlipForConditionalGeneration.from_pretrained(folder, local_files_only=True)
                tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise InterrogateError(f"BLIP caption model in {folder} cannot be loaded: {exc}") from None
            self._blip = (model.eval().to(self.dtype), tokenizer)
        return self._blip

    def _load_clip(self) -> tuple[Any, ClipTokenizer]:
        if self._clip is None:
            from transformers import CLIPModel

            folder = ensure_files(self.paths.clip, CLIP_FILES, self._source, what="CLIP ViT-L/14 model",
                                  repo=CLIP_REPO)
            try:
                self._clip = CLIPModel.from_pretrained(folder, local_files_only=True).eval().to(self.dtype)
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise InterrogateError(f"CLIP model in {folder} cannot be loaded: {exc}") from None
        if self._clip_tokenizer is None:
            self._clip_tokenizer = ClipTokenizer("clip")
        return self._clip, self._clip_tokenizer

    # -- DeepBooru ----------------------------------------------------------------------------------------------

    def _run_deepbooru(self, image: Image.Image, settings: dict[str, Any]) -> str:
        model = self._load_deepbooru()
        model.to(self.device)
        return tag_image(model, image, TagOptions.from_settings(settings), self.device, self._fill)

    def _load_deepbooru(self) -> DeepDanbooruModel:
        if self._deepbooru is None:
            files = deepbooru_candidates(self.paths.deepbooru)
            if not files:
                # --do-not-download-clip is about the CLIP interrogator's models only
                ensure_files(self.paths.deepbooru, [DEEPBOORU_FILE], replace(self._source, allow_download=True),
                             what="DeepBooru model", url=DEEPBOORU_URL)
                files = deepbooru_candidates(self.paths.deepbooru)
            path = files[0]
            try:
                state = load_torch_file(path, safe=self._safe)
                model = DeepDanbooruModel.from_state_dict(state)
            except Exception as exc:  # refused by the safe unpickler, corrupt, or not this network
                raise InterrogateError(f"DeepBooru model {path} cannot be loaded: {exc}") from None
            self._deepbooru = model.to(self.dtype)
        return self._deepbooru

    def _to(self, device: torch.device) -> None:
        for model in (self._blip[0] if self._blip else None, self._clip, self._deepbooru):
            if model is not None:
                model.to(device)

    def unload(self) -> None:
        """Forget every loaded model (they load again on the next use)."""
        with self._lock:
            self._blip = self._clip = self._deepbooru = None
