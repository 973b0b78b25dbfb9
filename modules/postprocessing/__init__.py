"""Postprocessing (layer 2): upscaler and face-restorer registries (neural ones through spandrel) and the Extras chain.

Public surface: `UpscalerRegistry` (Mapping name → `UpscalerEntry`; `upscale(image, scale, name, settings)`),
`FaceRestorerRegistry` (Mapping name → `FaceRestorer`; `restore(...)`), `ExtrasChain` / `ExtrasOptions` and
`build_registries(paths, flags)`, which `webui.py` stores as `ctx.extra["upscalers"]` and
`ctx.extra["face_restorers"]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modules.postprocessing.extras import (
    ExtrasChain,
    ExtrasImage,
    ExtrasInputError,
    ExtrasOptions,
    ExtrasResult,
    extras_output_dir,
    folder_sources,
    infotext_from_info,
    plaintext_to_html,
    save_kwargs,
)
from modules.postprocessing.face_restorers import (
    FACE_DETECTOR_MODEL,
    RESTORER_MODELS,
    FaceRestorerError,
    FaceRestorerRegistry,
)
from modules.postprocessing.model_downloads import NAMED_MODELS
from modules.postprocessing.spandrel_models import UpscalerModelError
from modules.postprocessing.upscalers import (
    BUILTIN_UPSCALERS,
    LATENT_UPSCALE_MODES,
    UnknownUpscalerError,
    UpscalerEntry,
    UpscalerRegistry,
)

__all__ = [
    "BUILTIN_UPSCALERS", "LATENT_UPSCALE_MODES", "ExtrasChain", "ExtrasImage", "ExtrasInputError", "ExtrasOptions",
    "ExtrasResult", "FaceRestorerError", "FaceRestorerRegistry", "UnknownUpscalerError", "UpscalerEntry",
    "UpscalerModelError", "UpscalerRegistry", "build_registries", "extras_output_dir", "folder_sources",
    "infotext_from_info", "plaintext_to_html", "save_kwargs",
]


def build_registries(paths: Any, flags: Any = None, *, settings: Any = None,
                     env: Mapping[str, str] | None = None) -> tuple[UpscalerRegistry, FaceRestorerRegistry]:
    """Both registries over `paths.upscaler_dirs` (models/ESRGAN, RealESRGAN, SwinIR, DAT, ScuNET, GFPGAN,
    Codeformer, or the `--*-models-path` flags); devices follow `--use-cpu`/`--device-id`/`--no-half` in `flags`.
    A1111's named upscalers (`NAMED_MODELS`, filtered by `settings`) are listed and downloaded on first use with
    the mirrors/proxies of `env`."""
    dirs = {name: Path(p) for name, p in dict(getattr(paths, "upscaler_dirs", {}) or {}).items()}
    models_dir = Path(getattr(paths, "models_dir", "models"))
    for name in ("ESRGAN", "RealESRGAN", "SwinIR", "DAT", "ScuNET", "GFPGAN", "Codeformer"):
        dirs.setdefault(name, models_dir / name)
    upscalers = UpscalerRegistry(dirs, flags=flags, named_models=NAMED_MODELS, settings=settings, env=env)
    return upscalers, FaceRestorerRegistry(dirs, flags=flags, detector_model=FACE_DETECTOR_MODEL,
                                           restorer_models=RESTORER_MODELS, settings=settings,
                                           env=env)
