"""A1111 `modules.sd_models` names for extensions, over the running app's `ModelManager` and checkpoint registry.

`checkpoints_list` ({title: info}), `checkpoint_aliases` ({every id: info}), `list_models()`,
`get_closest_checkpoint_match(name)`, `select_checkpoint()`, `model_hash(filename)`, `reload_model_weights(
sd_model=None, info=None)` / `load_model(checkpoint_info=None)` (load through the job queue, so never during a
job), `unload_model_weights()`, `model_data.sd_model` / `model_data.get_sd_model()`. Infos carry A1111's names
(`title`, `filename`, `model_name`, `name_for_extra`, `hash`, `sha256`, `shorthash`, `short_title`, `ids`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modules.compat.host import HOST
from modules.compat.state import CheckpointView, ModelView, current_model
from modules.models.hashes import legacy_model_hash


def list_models() -> None:
    """Rescan the checkpoint folders (A1111 `list_models`)."""
    HOST.current().models.registry.refresh()


def get_closest_checkpoint_match(search: str) -> CheckpointView | None:
    info = HOST.current().models.registry.get_closest(search)
    return CheckpointView(info) if info is not None else None


def select_checkpoint() -> CheckpointView | None:
    """The loaded checkpoint, else the one the app would load (A1111 `select_checkpoint`)."""
    models = HOST.current().models
    info = models.current.checkpoint if models.current is not None else models.registry.default
    return CheckpointView(info) if info is not None else None


def model_hash(filename: str) -> str:
    """A1111's old 8-character checkpoint hash."""
    return legacy_model_hash(filename)


def _underlying(info: Any) -> Any:
    return info._info if isinstance(info, CheckpointView) else info


def reload_model_weights(sd_model: Any = None, info: Any = None) -> ModelView | None:
    """Load `info` (a checkpoint info or title; None: the selected one) between jobs and return the model."""
    ctx = HOST.current()
    with ctx.jobs.exclusive():
        ctx.models.load(_underlying(info) if info is not None else None)
    return current_model()


def load_model(checkpoint_info: Any = None, already_loaded_state_dict: Any = None) -> ModelView | None:
    return reload_model_weights(None, checkpoint_info)


def unload_model_weights(sd_model: Any = None, info: Any = None) -> None:
    """Move the model to RAM (A1111 "Unload SD checkpoint")."""
    HOST.current().models.unload()


class ModelData:
    """A1111 `sd_models.model_data`."""

    @property
    def sd_model(self) -> ModelView | None:
        return current_model()

    def get_sd_model(self) -> ModelView | None:
        return current_model()


model_data = ModelData()

_DYNAMIC: dict[str, Callable[[], Any]] = {
    "checkpoints_list": lambda: {i.title: CheckpointView(i) for i in HOST.current().models.registry},
    "checkpoint_aliases": lambda: {key: CheckpointView(i) for i in HOST.current().models.registry for key in i.ids()},
}


def attribute(name: str) -> Any:
    getter = _DYNAMIC.get(name)
    if getter is None:
        raise AttributeError(f"module 'modules.sd_models' has no attribute {name!r} in this web UI")
    return getter()
