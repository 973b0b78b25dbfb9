"""The loaded model: one container for the networks of a checkpoint and what is known about them.

A1111 hangs everything off one ``LatentDiffusion`` object (``sd_model.model.diffusion_model``,
``sd_model.first_stage_model``, ``sd_model.cond_stage_model``/``conditioner``, ``sd_model.sd_checkpoint_info``,
``is_sdxl``, ``parameterization``...). Here that is a plain dataclass with explicit fields; the networks are
independent modules, so the offloader can place each one separately.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from modules.memory.offload import ModelOffloader, tensor_bytes
from modules.memory.precision import DtypePolicy
from modules.models.architectures import ArchitectureMatch
from modules.models.checkpoints import CheckpointInfo
from modules.models.vae_files import VaeResolution

TEXT_ENCODER = "text_encoder"
UNET = "unet"
VAE = "vae"
TEXT_ENCODER_ATTRIBUTES = ("clip_l", "open_clip")
"""Module attributes of ``CheckpointTextEncoders`` (modules.models.nn.text_encoders)."""


@dataclass
class LoadTimings:
    """Named stage durations, printed like A1111's ``Timer.summary``:
    ``Model loaded in 4.0s (load weights from disk: 0.4s, create model: 0.3s, apply weights to model: 2.8s)``."""

    stages: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = self.stages.get(name, 0.0) + time.perf_counter() - start

    @property
    def total(self) -> float:
        return sum(self.stages.values())

    def summary(self, what: str = "Model loaded") -> str:
        """A1111's one-line breakdown; stages under 0.05 s are left out, as A1111 leaves out negligible ones."""
        shown = [f"{name}: {seconds:.1f}s" for name, seconds in self.stages.items() if seconds >= 0.05]
        return f"{what} in {self.total:.1f}s" + (f" ({', '.join(shown)})." if shown else ".")


@dataclass
class StableDiffusionModel:
    """Networks and facts of one loaded checkpoint.

    ``text_encoders`` is what the text-encoder builder returned — by default
    ``modules.models.nn.text_encoders.CheckpointTextEncoders`` (``clip_l`` for SD1/SDXL, ``open_clip`` for SD2/SDXL)
    — or None for a UNet-only file. ``dtypes`` is the policy the networks were built with; ``device`` is where they
    compute.
    """

    checkpoint: CheckpointInfo
    architecture: ArchitectureMatch
    unet: nn.Module
    vae: nn.Module
    text_encoders: Any
    dtypes: DtypePolicy
    device: torch.device
    vae_resolution: VaeResolution
    timings: LoadTimings = field(default_factory=LoadTimings)
    offloader: ModelOffloader | None = None
    _text_module: nn.Module | None = field(default=None, repr=False)

    @property
    def family(self) -> str:
        """Detected family: ``sd1``, ``sd2``, ``sd2-v``, ``sdxl``, ``sdxl-refiner``, ``*-inpaint``, ``ip2p``."""
        return self.architecture.family

    @property
    def prediction_type(self) -> str:
        """``eps`` or ``v``."""
        return self.architecture.prediction_type

    @property
    def is_sdxl(self) -> bool:
        return self.architecture.is_sdxl

    @property
    def vae_name(self) -> str | None:
        """Infotext ``VAE``: the external VAE's file name, None for the checkpoint's own."""
        return self.vae_resolution.name

    @property
    def text_encoder_module(self) -> nn.Module | None:
        """The text encoders as one module (moved and offloaded together, as A1111's ``cond_stage_model``)."""
        found = self.text_encoders
        if found is None or isinstance(found, nn.Module):
            return found
        if self._text_module is None:
            parts = {name: module for name in TEXT_ENCODER_ATTRIBUTES
                     if isinstance(module := getattr(found, name, None), nn.Module)}
            self._text_module = nn.ModuleDict(parts)
        return self._text_module

    def components(self) -> dict[str, nn.Module]:
        """Named networks in pipeline order (text encoder, UNet, VAE), as the offloader places them."""
        parts: dict[str, nn.Module] = {}
        text = self.text_encoder_module
        if text is not None:
            parts[TEXT_ENCODER] = text
        parts[UNET] = self.unet
        parts[VAE] = self.vae
        return parts

    def weight_bytes(self) -> int:
        """Bytes of all weights (what a RAM cache entry or a full device placement costs)."""
        return sum(tensor_bytes(module) for module in self.components().values())

    def to(self, device: torch.device | str) -> StableDiffusionModel:
        """Move every network (bypassing the offloader, which is closed first) and return self."""
        self.detach_offloader()
        for module in self.components().values():
            module.to(device)
        return self

    def detach_offloader(self) -> None:
        """Remove the offload hooks (before caching in RAM or dropping the model)."""
        if self.offloader is not None:
            self.offloader.close()
            self.offloader = None
