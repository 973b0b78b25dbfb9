"""TensorBoard logging of textual-inversion and hypernetwork training (A1111 settings `training_enable_tensorboard`,
`training_tensorboard_save_images`, `training_tensorboard_flush_every`).

A1111 facts (`modules/textual_inversion/textual_inversion.py`, `tensorboard_setup`/`tensorboard_add`/
`tensorboard_add_image`): the events go to `<log directory>/tensorboard`, written by torch's `SummaryWriter` that
flushes every `training_tensorboard_flush_every` seconds; the scalars are `Loss/train` and `Learn rate/train` over
the global step plus `Loss/train/epoch-<n>` and `Learn rate/train/epoch-<n>` over the step within the epoch; with
`training_tensorboard_save_images` each preview image is added as `Validation at epoch <n>`.

Here the scalars are written at the steps that also get a loss-CSV row (`training_write_csv_every`, and the last
step), so the two logs agree. `SummaryWriter` needs the `tensorboard` package, which is optional (A1111 does not pin
it either): with the setting on and the package missing, training is refused with a message saying how to install
it, instead of training without the log the user asked for.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from modules.settings.store import Settings
from modules.training.ti_dataset import TrainingError

INSTALL_HINT = ("\"Enable tensorboard logging\" needs the tensorboard package, which is not installed: run "
                "`venv/bin/pip install tensorboard` (Windows: `venv\\Scripts\\pip install tensorboard`) and start "
                "training again, or turn the setting off (Settings → Training)")


class TensorboardUnavailable(TrainingError):
    """The setting asks for TensorBoard logs but the `tensorboard` package is missing."""


class TrainingTensorboard:
    """One training run's TensorBoard writer (created by :func:`open_tensorboard`)."""

    def __init__(self, log_dir: Path, flush_seconds: float, save_images: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter  # optional package, checked by open_tensorboard

        self.directory = log_dir / "tensorboard"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.save_images = save_images
        self._writer = SummaryWriter(log_dir=str(self.directory), flush_secs=max(1, int(flush_seconds)))

    def add_scalars(self, *, loss: float, learn_rate: float, global_step: int, epoch: int, epoch_step: int) -> None:
        """A1111 `tensorboard_add`: loss and learning rate over the global step and within the epoch."""
        self._writer.add_scalar("Loss/train", loss, global_step)
        self._writer.add_scalar(f"Loss/train/epoch-{epoch}", loss, epoch_step)
        self._writer.add_scalar("Learn rate/train", learn_rate, global_step)
        self._writer.add_scalar(f"Learn rate/train/epoch-{epoch}", learn_rate, epoch_step)

    def add_preview(self, image_path: Path, *, global_step: int, epoch: int) -> None:
        """A1111 `tensorboard_add_image`: the preview as `Validation at epoch <n>` (only with the images setting)."""
        if not self.save_images:
            return
        with Image.open(image_path) as image:
            pixels = np.asarray(image.convert("RGB"))
        self._writer.add_image(f"Validation at epoch {epoch}", pixels, global_step, dataformats="HWC")

    def close(self) -> None:
        """Flush and close the event file."""
        self._writer.close()


def _setting(settings: Settings, key: str, default: Any) -> Any:
    value = settings.get(key)
    return default if value is None else value


def open_tensorboard(settings: Settings, log_dir: Path) -> TrainingTensorboard | None:
    """The run's writer when `training_enable_tensorboard` is on, else None; raises `TensorboardUnavailable` (with
    the install command) when the setting is on and the package is missing."""
    if not bool(_setting(settings, "training_enable_tensorboard", False)):
        return None
    if importlib.util.find_spec("tensorboard") is None:
        raise TensorboardUnavailable(INSTALL_HINT)
    return TrainingTensorboard(log_dir, float(_setting(settings, "training_tensorboard_flush_every", 120)),
                               bool(_setting(settings, "training_tensorboard_save_images", False)))
