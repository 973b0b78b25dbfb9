"""Files that sit next to a checkpoint and change how it loads (A1111 conventions).

* ``<stem>.yaml`` – an LDM/SGM inference config. A1111 uses it instead of its own guess ("a sidecar yaml always
  wins", ``find_checkpoint_config_near_filename``). We have no config-driven model builder, so only the keys that can
  change a decision are read: ``parameterization: "v"`` (SD2-v style), SGM's ``denoiser_config`` scaling target
  (``VScaling…`` → v-prediction) and the UNet ``in_channels`` (4 normal, 9 inpaint, 8 instruct-pix2pix).
* ``<stem>.vae.pt`` / ``.vae.ckpt`` / ``.vae.safetensors`` – a VAE meant for this checkpoint (A1111 lists these among
  the VAEs and prefers them under "Automatic").
* ``<stem>.json`` – A1111's per-checkpoint user metadata (description, notes, ``vae`` preference, ``sd version``).
* Marker keys inside the state dict: ``v_pred`` (an empty tensor that v-prediction SDXL checkpoints such as NoobAI-XL
  V-Pred carry; Forge/ComfyUI honour it) and ``ztsnr`` (zero-terminal-SNR schedule).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

VAE_SIDECAR_SUFFIXES = (".vae.pt", ".vae.ckpt", ".vae.safetensors")
V_PRED_MARKER_KEY = "v_pred"
ZTSNR_MARKER_KEY = "ztsnr"


@dataclass(frozen=True)
class ConfigHints:
    """What a sidecar yaml says about the model; ``None`` fields were not stated."""

    path: Path
    prediction_type: str | None = None
    """``"v"`` or ``"eps"``."""
    in_channels: int | None = None


@dataclass(frozen=True)
class StateDictMarkers:
    """Marker keys found in a state dict."""

    v_prediction: bool = False
    zero_terminal_snr: bool = False


def stem_path(checkpoint: str | os.PathLike[str]) -> Path:
    """The checkpoint path without its extension (``a/b.safetensors`` → ``a/b``), as A1111's ``splitext``."""
    path = Path(checkpoint)
    return path.with_suffix("") if path.suffix else path


def find_config_sidecar(checkpoint: str | os.PathLike[str]) -> Path | None:
    """``<stem>.yaml`` next to the checkpoint, if it exists."""
    candidate = stem_path(checkpoint).with_name(stem_path(checkpoint).name + ".yaml")
    return candidate if candidate.is_file() else None


def find_vae_sidecars(checkpoint: str | os.PathLike[str]) -> list[Path]:
    """Existing ``<stem>.vae.{pt,ckpt,safetensors}`` files, in A1111's preference order."""
    base = stem_path(checkpoint)
    return [base.with_name(base.name + suffix) for suffix in VAE_SIDECAR_SUFFIXES
            if base.with_name(base.name + suffix).is_file()]


def user_metadata_path(checkpoint: str | os.PathLike[str]) -> Path:
    """Where A1111 keeps per-checkpoint user metadata: ``<stem>.json``."""
    base = stem_path(checkpoint)
    return base.with_name(base.name + ".json")


def read_user_metadata(checkpoint: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint's ``<stem>.json`` user metadata, or ``{}`` (a broken file is logged, not fatal, as in A1111)."""
    path = user_metadata_path(checkpoint)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf8"))
    except (OSError, ValueError) as error:
        log.warning("Ignoring unreadable user metadata %s: %s", path, error)
        return {}
    return data if isinstance(data, dict) else {}


def read_config_hints(path: str | os.PathLike[str]) -> ConfigHints:
    """Read the prediction type and UNet input channels from an LDM (SD1/2) or SGM (SDXL) yaml.

    Uses PyYAML when installed; otherwise a line scan for the same keys (they are scalar, one per line, in every
    released config). An unparsable file raises ``ValueError`` naming it.
    """
    path = Path(path)
    text = path.read_text(encoding="utf8")
    try:
        import yaml
    except ImportError:
        return _scan_config_text(path, text)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from None
    params = _dig(document, "model", "params")
    if not isinstance(params, dict):
        return ConfigHints(path)
    prediction: str | None = None
    parameterization = params.get("parameterization")
    if isinstance(parameterization, str):
        prediction = "v" if parameterization.strip().lower() == "v" else "eps"
    scaling_target = _dig(params, "denoiser_config", "params", "scaling_config", "target")
    if isinstance(scaling_target, str):
        prediction = _prediction_from_scaling_target(scaling_target)
    in_channels = _dig(params, "unet_config", "params", "in_channels")
    if in_channels is None:
        in_channels = _dig(params, "network_config", "params", "in_channels")
    return ConfigHints(path, prediction, int(in_channels) if isinstance(in_channels, int) else None)


def _dig(node: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _prediction_from_scaling_target(target: str) -> str:
    """SGM scaling classes: ``VScaling``/``VScalingWithEDMcNoise`` mean v-prediction, ``EpsScaling`` epsilon."""
    return "v" if target.rsplit(".", 1)[-1].startswith("VScaling") else "eps"


def _scan_config_text(path: Path, text: str) -> ConfigHints:
    prediction: str | None = None
    in_channels: int | None = None
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if match := re.fullmatch(r"parameterization:\s*['\"]?(\w+)['\"]?", line):
            prediction = "v" if match.group(1).lower() == "v" else "eps"
        elif match := re.fullmatch(r"target:\s*\S*\.(V|Eps)Scaling\w*", line):
            prediction = "v" if match.group(1) == "V" else "eps"
        elif (match := re.fullmatch(r"in_channels:\s*(\d+)", line)) and in_channels is None:
            in_channels = int(match.group(1))  # the first in_channels in a config is the UNet's
    return ConfigHints(path, prediction, in_channels)


def state_dict_markers(keys: Iterable[str]) -> StateDictMarkers:
    """Detect the ``v_pred`` / ``ztsnr`` marker keys some checkpoints carry at the top level."""
    present = set(keys)
    return StateDictMarkers(V_PRED_MARKER_KEY in present, ZTSNR_MARKER_KEY in present)
