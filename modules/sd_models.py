"""Compatibility: A1111 `modules.sd_models` for extensions (re-exports of `modules.compat.sd_models`;
docs/extensions.md)."""

from __future__ import annotations

from typing import Any

from modules.compat.sd_models import (
    attribute,
    get_closest_checkpoint_match,
    list_models,
    load_model,
    model_data,
    model_hash,
    reload_model_weights,
    select_checkpoint,
    unload_model_weights,
)


def __getattr__(name: str) -> Any:
    return attribute(name)


__all__ = ["get_closest_checkpoint_match", "list_models", "load_model", "model_data", "model_hash",
           "reload_model_weights", "select_checkpoint", "unload_model_weights"]
