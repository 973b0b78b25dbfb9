"""Loading upscaler and face-restorer weights with spandrel, on the device and dtype modules.memory chooses.

A1111 1.8+ loads every neural upscaler and face restorer through spandrel (`modules/modelloader.py
::load_spandrel_model`): `spandrel.ModelLoader(device).load_from_file(path)`, a warning when the detected
architecture is not the expected one, optional half precision when the model `supports_half`, then `.eval()`.
CodeFormer lives in `spandrel_extra_arches` (non-commercial licence), which A1111 adds to spandrel's registry.
Here a private `ArchRegistry` holds spandrel's architectures plus the extra ones when that package is installed,
so spandrel's global `MAIN_REGISTRY` is never modified.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

MODEL_SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt")
"""File types spandrel reads (`ModelLoader.load_state_dict_from_file`)."""


class UpscalerModelError(RuntimeError):
    """A model file that cannot be used: unreadable, unknown architecture, or not the right kind of model."""


@dataclass(frozen=True)
class DevicePlacement:
    """Where a network runs and in which dtype it would like to run (fp32 fallback when it cannot)."""

    device: torch.device
    dtype: torch.dtype = torch.float32


def placement_for(component: str, flags: Any = None) -> DevicePlacement:
    """Device for `component` ("esrgan", "swinir", "scunet", "gfpgan", "codeformer") and the preferred dtype.

    A1111: `--use-cpu <component>` (or `all`) forces the CPU (`devices.get_device_for`); on CUDA, fp16 unless
    `--no-half` (A1111's `prefer_half`); the CPU runs fp32 (or bf16 where modules.memory says the CPU does bf16
    natively). `flags` is the parsed command line (None = defaults).
    """
    from modules.memory.devices import probe_devices
    from modules.memory.precision import PrecisionFlags, resolve_dtype_policy

    device_id = getattr(flags, "device_id", None)
    use_cpu = getattr(flags, "use_cpu", None) or ()
    info = probe_devices(device_id, use_cpu)
    device = info.device_for(component)
    precision = PrecisionFlags(no_half=bool(getattr(flags, "no_half", False)),
                               precision=getattr(flags, "precision", "autocast") or "autocast")
    return DevicePlacement(device, resolve_dtype_policy(device, precision).unet)


@functools.lru_cache(maxsize=1)
def arch_registry() -> Any:
    """spandrel's architectures plus `spandrel_extra_arches` (CodeFormer …) when installed, in a private registry
    (built once; spandrel registries are copy-on-write and only read here)."""
    import spandrel

    registry = spandrel.ArchRegistry()
    registry.add(*spandrel.MAIN_REGISTRY.architectures("insertion"))
    try:
        import spandrel_extra_arches
    except ImportError:
        log.info("spandrel_extra_arches is not installed: CodeFormer weights cannot be loaded")
    else:
        registry.add(*spandrel_extra_arches.EXTRA_REGISTRY.architectures("insertion"), ignore_duplicates=True)
    return registry


def has_extra_arches() -> bool:
    """True when `spandrel_extra_arches` (needed for CodeFormer) can be imported."""
    try:
        import spandrel_extra_arches  # noqa: F401
    except ImportError:
        return False
    return True


def load_image_model(path: str | Path, placement: DevicePlacement, *, purposes: Iterable[str] = ("SR", "Restoration"),
                     expected: str | None = None) -> Any:
    """Load `path` with spandrel as an image-to-image model for one of `purposes`; returns the descriptor.

    Raises `UpscalerModelError` naming the file when spandrel cannot read it, does not know the architecture, or the
    model is not an image-to-image model of the wanted purpose (e.g. an inpainting model or a face model used as an
    upscaler). The model is moved to `placement.device`, in `placement.dtype` when the architecture supports it
    (spandrel's `supports_half` / `supports_bfloat16`), else fp32, and put in eval mode.
    """
    import spandrel

    path = Path(path)
    wanted = tuple(purposes)
    try:
        loader = spandrel.ModelLoader(device="cpu", registry=arch_registry())
        descriptor = loader.load_from_file(path)
    except spandrel.UnsupportedModelError:
        raise UpscalerModelError(f"{path.name}: spandrel does not recognise this model's architecture "
                                 f"(not an ESRGAN/Real-ESRGAN/SwinIR/DAT/SCUNet/… weights file)") from None
    except (OSError, ValueError, RuntimeError, KeyError, EOFError) as exc:
        raise UpscalerModelError(f"{path.name}: cannot load the model file: {exc}") from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise UpscalerModelError(f"{path.name}: {descriptor.architecture.name} is a {descriptor.purpose} model, not "
                                 f"an image-to-image model; it cannot be used here")
    if descriptor.purpose not in wanted:
        raise UpscalerModelError(f"{path.name}: {descriptor.architecture.name} is a {descriptor.purpose} model; "
                                 f"expected one of {', '.join(wanted)}")
    if expected and descriptor.architecture.id != expected:
        log.warning("%s: expected a %s model, found %s", path.name, expected, descriptor.architecture.id)
    dtype = placement.dtype
    if (dtype == torch.float16 and not descriptor.supports_half) or (
            dtype == torch.bfloat16 and not descriptor.supports_bfloat16):
        dtype = torch.float32
    descriptor.to(placement.device).to(dtype)
    descriptor.eval()
    return descriptor


def model_files(folders: Iterable[Path]) -> list[Path]:
    """Model files (`MODEL_SUFFIXES`) directly inside each existing folder, sorted by name within a folder."""
    found: list[Path] = []
    for folder in folders:
        if folder.is_dir():
            found.extend(sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES),
                                key=lambda p: p.name.lower()))
    return found
