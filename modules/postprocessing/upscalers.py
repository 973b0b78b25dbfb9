"""The upscaler registry: A1111's built-in upscalers plus model files found in the upscaler folders.

A1111 facts (reference §3.4, §8, §11.7; `modules/upscaler.py`, `modules/shared_items.py`):
- Built-ins: "None" (no model: `Upscaler.upscale` then Lanczos-resizes to the target), "Lanczos", "Nearest" (PIL).
- The latent modes (`Latent`, `Latent (antialiased)`, …) are hires-fix-only and listed separately
  (`/sdapi/v1/latent-upscale-modes`); `LATENT_UPSCALE_MODES` repeats their names (the modes themselves live in the
  processing layer, which this layer may not import).
- Model upscalers: weights in `models/ESRGAN`, `models/RealESRGAN`, `models/SwinIR`, `models/DAT`, `models/ScuNET`
  (or the `--*-models-path` flags), loaded through spandrel; the list is sorted with the built-ins first and the
  rest by lower-cased name (`shared_items.refresh_upscalers`).
- `Upscaler.upscale(img, scale)`: target = `int(w·scale) // 8 · 8` × `int(h·scale) // 8 · 8`; the model runs at its
  native scale up to three times until the image covers the target (stopping when a pass does not change the
  size), then a Lanczos resize gives the exact target size.
- Model inference is tiled: `ESRGAN_tile` 192 / `ESRGAN_tile_overlap` 8 (DAT: `DAT_tile` / `DAT_tile_overlap`;
  SwinIR: `SWIN_tile` 192 / `SWIN_tile_overlap` 8; ScuNET: `SCUNET_tile` 256 / `SCUNET_tile_overlap` 8).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from modules.postprocessing.model_downloads import ModelDownloadError, NamedModel, enabled, fetch_model
from modules.postprocessing.spandrel_models import (
    DevicePlacement,
    UpscalerModelError,
    load_image_model,
    model_files,
    placement_for,
)
from modules.postprocessing.tiling import pil_to_tensor, tensor_to_pil, tiled_apply

BUILTIN_UPSCALERS = ("None", "Lanczos", "Nearest")
LATENT_UPSCALE_MODES = ("Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
                        "Latent (nearest)", "Latent (nearest-exact)")
"""Names of A1111's latent upscale modes (hires fix only; implemented in modules.processing.hires)."""

MODEL_FOLDERS = ("ESRGAN", "RealESRGAN", "SwinIR", "DAT", "ScuNET")
"""Upscaler folders under `models/` scanned for weights, in this order."""

TILE_SETTINGS: dict[str, tuple[str, int, str, int]] = {
    "ESRGAN": ("ESRGAN_tile", 192, "ESRGAN_tile_overlap", 8),
    "RealESRGAN": ("ESRGAN_tile", 192, "ESRGAN_tile_overlap", 8),
    "DAT": ("DAT_tile", 192, "DAT_tile_overlap", 8),
    "SwinIR": ("SWIN_tile", 192, "SWIN_tile_overlap", 8),
    "ScuNET": ("SCUNET_tile", 256, "SCUNET_tile_overlap", 8),
}
"""Folder → (tile setting, A1111 default, overlap setting, A1111 default)."""

DEVICE_COMPONENT = {"ESRGAN": "esrgan", "RealESRGAN": "esrgan", "DAT": "esrgan", "SwinIR": "swinir",
                    "ScuNET": "scunet"}
"""`--use-cpu` component that governs each folder's models (A1111 `devices.device_esrgan` etc.)."""

DEFAULT_SCALE = 4
"""A1111's `UpscalerData.scale` default, reported when a file name does not say its scale."""

MAX_MODEL_PASSES = 3
"""A1111 `Upscaler.upscale` runs the model at most three times."""


class UnknownUpscalerError(ValueError):
    """An upscaler name that is not in the registry."""


@dataclass(frozen=True)
class UpscalerEntry:
    """One selectable upscaler (A1111 `UpscalerData`): its name, kind, weights file and nominal scale."""

    name: str
    kind: str
    """"none", "pil" or "model"."""
    path: Path | None = None
    folder: str | None = None
    scale: int = DEFAULT_SCALE
    named: NamedModel | None = None
    """A1111's named model this entry stands for (downloaded to `path` on first use when the file is missing)."""

    def api_entry(self) -> dict[str, Any]:
        """The `/sdapi/v1/upscalers` item `{name, model_name, model_path, model_url, scale}`."""
        return {"name": self.name, "model_name": self.folder, "model_path": str(self.path) if self.path else None,
                "model_url": self.named.url if self.named else None, "scale": self.scale}


def scale_from_name(stem: str) -> int:
    """Scale written in a file name ("4x_foo", "foo_x2", "2x-bar"), else 4 (A1111's default), read without loading."""
    match = re.search(r"(?:^|[^a-z0-9])(\d)x(?:[^a-z0-9]|$)|(?:^|[^a-z0-9])x(\d)(?:[^a-z0-9]|$)", stem.lower())
    if match:
        return int(match.group(1) or match.group(2))
    return DEFAULT_SCALE


def upscale_target(width: int, height: int, scale: float) -> tuple[int, int]:
    """A1111 `Upscaler.upscale` target: `int(w·scale) // 8 · 8` by `int(h·scale) // 8 · 8` (at least 8 px)."""
    return max(8, int(width * scale) // 8 * 8), max(8, int(height * scale) // 8 * 8)


def image_key(image: Image.Image) -> str:
    """Content hash of an image for the result cache (A1111 hashes the pixel data)."""
    digest = hashlib.sha1(image.tobytes())
    digest.update(f"{image.mode}{image.size}".encode())
    return digest.hexdigest()


def _setting(settings: Mapping[str, Any] | None, key: str, default: Any) -> Any:
    if settings is None:
        return default
    try:  # a mapping, a settings snapshot, or the live `Settings` (whose get takes the key only)
        value = settings.get(key) if hasattr(settings, "get") else settings[key]
    except (KeyError, AttributeError):
        return default
    return default if value is None else value


class UpscalerRegistry(Mapping[str, UpscalerEntry]):
    """Every upscaler by name (built-ins first, then model files by lower-cased name); runs them with caching.

    `folders` maps a folder kind ("ESRGAN", "RealESRGAN", "SwinIR", "DAT", "ScuNET") to its directory
    (`Paths.upscaler_dirs`). `placement` chooses device/dtype per `--use-cpu` component (default: modules.memory's
    probe). Loaded models stay in memory (at most `max_loaded_models`); results are cached per image, upscaler and
    scale, holding at most `upscaling_max_images_in_cache` images (A1111 default 5; 0 disables the cache).
    `named_models` (production: A1111's `NAMED_MODELS`) are listed whether or not their file exists — filtered by
    `realesrgan_enabled_models` / `dat_enabled_models` read from `settings` at each refresh — and downloaded
    into their folder on first use (`env`: `HF_ENDPOINT`, `GITHUB_ENDPOINT`, `HF_HUB_OFFLINE`, proxies).
    """

    def __init__(self, folders: Mapping[str, Path], *, flags: Any = None,
                 placement: Callable[[str], DevicePlacement] | None = None, max_loaded_models: int = 1,
                 named_models: Sequence[NamedModel] = (), settings: Any = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.folders = {kind: Path(folder) for kind, folder in folders.items() if kind in MODEL_FOLDERS}
        self.named_models = tuple(named_models)
        self.settings = settings
        self._env = env
        self._placement = placement or (lambda component: placement_for(component, flags))
        self._max_loaded = max(1, max_loaded_models)
        self._entries: dict[str, UpscalerEntry] = {}
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._results: OrderedDict[tuple[Any, ...], Image.Image] = OrderedDict()
        self._lock = threading.RLock()
        self.refresh()

    # -- Mapping ------------------------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> UpscalerEntry:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    # -- listing ------------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Rescan the folders; unchanged files keep their loaded models, removed ones are dropped."""
        models: list[UpscalerEntry] = []
        taken = set(BUILTIN_UPSCALERS)
        claimed: set[Path] = set()
        for named in self.named_models:
            folder = self.folders.get(named.folder)
            if folder is None or not enabled(named, self.settings):
                continue
            path = next((p for p in model_files([folder]) if p.name.lower() == named.file_name.lower()),
                        folder / named.file_name)
            claimed.add(path)
            taken.add(named.name)
            models.append(UpscalerEntry(named.name, "model", path, named.folder, named.scale, named))
        for kind in MODEL_FOLDERS:
            folder = self.folders.get(kind)
            if folder is None:
                continue
            for path in model_files([folder]):
                if path in claimed:
                    continue
                name = path.stem if path.stem not in taken else f"{path.stem} ({kind})"
                n = 2
                while name in taken:
                    name, n = f"{path.stem} ({kind} {n})", n + 1
                taken.add(name)
                models.append(UpscalerEntry(name, "model", path, kind, scale_from_name(path.stem)))
        entries = [UpscalerEntry("None", "none"), UpscalerEntry("Lanczos", "pil"), UpscalerEntry("Nearest", "pil")]
        entries += sorted(models, key=lambda e: e.name.lower())
        with self._lock:
            old = self._entries
            self._entries = {e.name: e for e in entries}
            for name in list(self._models):
                if name not in self._entries or old.get(name, self._entries[name]).path != self._entries[name].path:
                    del self._models[name]
                else:
                    self._entries[name] = replace(self._entries[name], scale=int(self._models[name].scale))

    def names(self) -> list[str]:
        """Upscaler names in A1111's order (dropdowns; "None" first)."""
        return list(self._entries)

    def model_entries(self, folder: str | None = None) -> list[UpscalerEntry]:
        """Model upscalers, optionally of one folder kind (e.g. "RealESRGAN" for `/sdapi/v1/realesrgan-models`)."""
        return [e for e in self._entries.values() if e.kind == "model" and (folder is None or e.folder == folder)]

    def get_entry(self, name: str) -> UpscalerEntry:
        """The entry called `name`; `UnknownUpscalerError` listing the available names otherwise."""
        try:
            return self._entries[name]
        except KeyError:
            hint = " (latent modes are for hires fix only)" if name in LATENT_UPSCALE_MODES else ""
            raise UnknownUpscalerError(f"upscaler {name!r} not found{hint}; available: "
                                       f"{', '.join(self._entries)}") from None

    # -- running ------------------------------------------------------------------------------------------------
    def upscale(self, image: Image.Image, scale: float, name: str,
                settings: Mapping[str, Any] | None = None) -> Image.Image:
        """Upscale `image` by `scale` with upscaler `name` following A1111 `Upscaler.upscale` (module docstring).

        Results are cached by image content, name, scale and tile settings; the cached image is returned as a copy.
        """
        entry = self.get_entry(name)
        tile = self._tile_settings(entry, settings)
        key = (image_key(image), name, float(scale), tile)
        limit = int(_setting(settings, "upscaling_max_images_in_cache", 5))
        with self._lock:
            cached = self._results.pop(key, None)
            if cached is not None:
                self._results[key] = cached
                return cached.copy()
        progress = bool(_setting(settings, "enable_upscale_progressbar", True))
        result = self._upscale_uncached(image, scale, entry, tile, progress)
        if limit > 0:
            with self._lock:
                self._results[key] = result.copy()
                while len(self._results) > limit:
                    self._results.popitem(last=False)
        return result

    def clear_cache(self) -> None:
        """Forget cached results and unload models (A1111 frees upscaler models after use on low memory)."""
        with self._lock:
            self._results.clear()
            self._models.clear()

    def _tile_settings(self, entry: UpscalerEntry, settings: Mapping[str, Any] | None) -> tuple[int, int]:
        tile_key, tile_default, overlap_key, overlap_default = TILE_SETTINGS.get(entry.folder or "ESRGAN",
                                                                                 TILE_SETTINGS["ESRGAN"])
        return int(_setting(settings, tile_key, tile_default)), int(_setting(settings, overlap_key, overlap_default))

    def _upscale_uncached(self, image: Image.Image, scale: float, entry: UpscalerEntry,
                          tile: tuple[int, int], progress: bool = False) -> Image.Image:
        dest = upscale_target(image.width, image.height, scale)
        img = image.convert("RGB") if image.mode not in ("RGB",) else image
        for i in range(MAX_MODEL_PASSES):
            if img.width >= dest[0] and img.height >= dest[1] and (i > 0 or scale != 1):
                break
            before = img.size
            img = self._one_pass(img, scale, entry, tile, progress)
            if img.size == before:
                break
        if img.size != dest:
            img = img.resize(dest, Image.Resampling.LANCZOS)
        return img

    def _one_pass(self, image: Image.Image, scale: float, entry: UpscalerEntry, tile: tuple[int, int],
                  progress: bool = False) -> Image.Image:
        """One `do_upscale`: PIL resize by `scale` for Lanczos/Nearest, nothing for "None", the model otherwise."""
        if entry.kind == "none":
            return image
        if entry.kind == "pil":
            method = Image.Resampling.LANCZOS if entry.name == "Lanczos" else Image.Resampling.NEAREST
            return image.resize((int(image.width * scale), int(image.height * scale)), method)
        return self.run_model(image, entry.name, tile, progress=progress)

    def run_model(self, image: Image.Image, name: str, tile: tuple[int, int] | None = None, *,
                  progress: bool = False) -> Image.Image:
        """One pass of model upscaler `name` at its native scale, tiled by `tile` = (size, overlap); 0 = untiled;
        `progress`: the console's "Tiled upscale" bar (`enable_upscale_progressbar`, on by default in A1111)."""
        entry = self.get_entry(name)
        if entry.kind != "model":
            raise UnknownUpscalerError(f"upscaler {name!r} is not a model upscaler")
        descriptor = self.load_model(name)
        size, overlap = tile if tile is not None else self._tile_settings(entry, None)
        device, dtype = descriptor.device, descriptor.dtype
        x = pil_to_tensor(image, device, dtype)
        with torch.inference_mode():
            out = tiled_apply(descriptor, x, int(descriptor.scale), size, overlap, progress=progress)
        return tensor_to_pil(out)

    def load_model(self, name: str) -> Any:
        """The spandrel descriptor of model upscaler `name`, loaded once and kept (LRU of `max_loaded_models`)."""
        entry = self.get_entry(name)
        with self._lock:
            if name in self._models:
                self._models.move_to_end(name)
                return self._models[name]
        assert entry.path is not None and entry.folder is not None
        if not entry.path.is_file() and entry.named is not None:
            with self._lock:  # one download at a time; a second job asking for the same file finds it done
                if not entry.path.is_file():
                    try:
                        fetch_model(entry.named, entry.path, self._env)
                    except ModelDownloadError as exc:
                        raise UpscalerModelError(str(exc)) from None
        if not entry.path.is_file():
            raise UpscalerModelError(f"{entry.name}: model file {entry.path} no longer exists; refresh the list")
        placement = self._placement(DEVICE_COMPONENT.get(entry.folder, "esrgan"))
        descriptor = load_image_model(entry.path, placement, purposes=("SR", "Restoration"))
        with self._lock:
            self._models[name] = descriptor
            if name in self._entries and self._entries[name].scale != int(descriptor.scale):
                self._entries[name] = replace(self._entries[name], scale=int(descriptor.scale))  # the model's own
            while len(self._models) > self._max_loaded:
                self._models.popitem(last=False)
        return descriptor
