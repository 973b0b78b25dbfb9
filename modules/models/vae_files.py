"""VAE file discovery and A1111's rules for which VAE a checkpoint uses (``modules/sd_vae.py`` behaviour).

Listing: ``models/VAE/**/*.{ckpt,pt,safetensors}`` plus ``*.vae.{ckpt,pt,safetensors}`` next to checkpoints in
``models/Stable-diffusion`` and ``--ckpt-dir``; each is known by its path relative to the directory it was found in.

Resolution for a checkpoint (first rule that gives an answer wins):

1. ``--vae-path`` ("from commandline argument").
2. If ``sd_vae_overrides_per_model_preferences`` is on and ``sd_vae`` is not "Automatic": the setting
   ("None" = the checkpoint's own VAE).
3. The checkpoint's user metadata ``<stem>.json`` key ``vae`` (a VAE name or "None").
4. A VAE "near" the checkpoint: its ``<stem>.vae.*`` sidecar, else (A1111's rule) any known VAE whose file name
   starts with the checkpoint's stem — used when the setting is "Automatic" or per-model preferences may not be
   overridden.
5. The ``sd_vae`` setting; an unknown name is logged and falls back to the checkpoint's own VAE.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from modules.models import sidecars
from modules.models.checkpoints import CheckpointInfo, natural_sort_key
from modules.models.state_dict_io import read_state_dict

log = logging.getLogger(__name__)

AUTOMATIC = "Automatic"
NONE = "None"
VAE_SUFFIXES = (".ckpt", ".pt", ".safetensors")
IGNORED_VAE_KEYS = frozenset({"model_ema.decay", "model_ema.num_updates"})
"""Training leftovers A1111 drops from VAE files (with every ``loss…`` key)."""
CHECKPOINT_VAE_PREFIX = "first_stage_model."


@dataclass(frozen=True)
class VaeResolution:
    """Which VAE to use: ``path`` None means the checkpoint's own (baked-in) VAE. ``source`` is for the log line."""

    path: Path | None
    source: str

    @property
    def name(self) -> str | None:
        """File name written to infotext as ``VAE`` (None for the checkpoint's own VAE)."""
        return self.path.name if self.path is not None else None


class VaeRegistry:
    """Known VAE files, refreshable (``/sdapi/v1/refresh-vae``)."""

    def __init__(
        self,
        vae_dir: str | os.PathLike[str],
        checkpoint_dirs: Iterable[str | os.PathLike[str]] = (),
        *,
        vae_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.vae_dir = Path(vae_dir)
        self.checkpoint_dirs = [Path(d) for d in checkpoint_dirs]
        self.vae_path = Path(vae_path) if vae_path is not None else None
        self._files: dict[str, Path] = {}
        self.refresh()

    def refresh(self) -> dict[str, Path]:
        """Rescan ``models/VAE`` and the checkpoint dirs."""
        files: dict[str, Path] = {}
        if self.vae_dir.is_dir():
            for path in self.vae_dir.rglob("*"):
                if path.is_file() and path.name.lower().endswith(VAE_SUFFIXES):
                    files.setdefault(path.relative_to(self.vae_dir).as_posix(), path.absolute())
        for root in self.checkpoint_dirs:
            if not root.is_dir():
                continue
            for path in root.rglob("*"):
                if path.is_file() and path.name.lower().endswith(sidecars.VAE_SIDECAR_SUFFIXES):
                    files.setdefault(path.relative_to(root).as_posix(), path.absolute())
        self._files = dict(sorted(files.items(), key=lambda item: natural_sort_key(item[0])))
        return dict(self._files)

    @property
    def files(self) -> Mapping[str, Path]:
        """Name → absolute path."""
        return dict(self._files)

    def choices(self) -> list[str]:
        """Values of the ``sd_vae`` setting: "Automatic", "None", then every known VAE name."""
        return [AUTOMATIC, NONE, *self._files]

    def find(self, name: str) -> Path | None:
        """A VAE by its listed name, or by bare file name (infotext ``VAE`` carries only the file name)."""
        if name in self._files:
            return self._files[name]
        for key, path in self._files.items():
            if Path(key).name == name:
                return path
        return None

    def find_near_checkpoint(self, checkpoint: CheckpointInfo) -> Path | None:
        """The ``<stem>.vae.*`` sidecar, else the first known VAE whose file name starts with the checkpoint stem."""
        if checkpoint.vae_sidecars:
            return checkpoint.vae_sidecars[0]
        stem = checkpoint.filename.name.rsplit(".", 1)[0]
        for path in self._files.values():
            if path.name.startswith(stem):
                return path
        return None

    def resolve(
        self,
        checkpoint: CheckpointInfo,
        sd_vae: str = AUTOMATIC,
        *,
        overrides_per_model_preferences: bool = True,
        user_metadata: Mapping[str, object] | None = None,
    ) -> VaeResolution:
        """Apply the resolution order in the module docstring. ``user_metadata`` defaults to ``<stem>.json``."""
        if self.vae_path is not None:
            return VaeResolution(self.vae_path, "from commandline argument")
        is_automatic = sd_vae == AUTOMATIC
        if overrides_per_model_preferences and not is_automatic:
            return self._from_setting(sd_vae)
        metadata = user_metadata if user_metadata is not None else sidecars.read_user_metadata(checkpoint.filename)
        preference = metadata.get("vae")
        if isinstance(preference, str) and preference != AUTOMATIC:
            if preference == NONE:
                return VaeResolution(None, "from user metadata")
            found = self.find(preference)
            if found is not None:
                return VaeResolution(found, "from user metadata")
        near = self.find_near_checkpoint(checkpoint)
        if near is not None and (is_automatic or not overrides_per_model_preferences):
            return VaeResolution(near, "found near the checkpoint")
        return self._from_setting(sd_vae)

    def _from_setting(self, sd_vae: str) -> VaeResolution:
        if sd_vae == NONE:
            return VaeResolution(None, "specified in settings (None)")
        if sd_vae == AUTOMATIC:
            return VaeResolution(None, "the checkpoint's own VAE (Automatic)")
        found = self.find(sd_vae)
        if found is not None:
            return VaeResolution(found, "specified in settings")
        log.warning("Couldn't find VAE named %s; using the checkpoint's own VAE instead", sd_vae)
        return VaeResolution(None, f"VAE '{sd_vae}' not found; the checkpoint's own VAE")


def read_vae_state_dict(path: str | os.PathLike[str], *, safe_unpickle: bool = True) -> dict[str, torch.Tensor]:
    """A VAE file's weights with bare ``encoder.…``/``decoder.…`` keys.

    Drops ``loss…`` and EMA bookkeeping keys (A1111 ``load_vae_dict``) and strips a ``first_stage_model.`` prefix so a
    full checkpoint can also serve as a VAE source.
    """
    state = read_state_dict(path, safe_unpickle=safe_unpickle)
    result: dict[str, torch.Tensor] = {}
    prefixed = any(key.startswith(CHECKPOINT_VAE_PREFIX) for key in state)
    for key, value in state.items():
        if key.startswith("loss") or key in IGNORED_VAE_KEYS:
            continue
        if prefixed:
            if not key.startswith(CHECKPOINT_VAE_PREFIX):
                continue
            key = key[len(CHECKPOINT_VAE_PREFIX):]
        result[key] = value
    return result
