"""Compatibility: A1111 `modules.devices` for extensions (re-exports of `modules.compat.devices`; docs/extensions.md).
`device`, `dtype`, `dtype_vae`, `dtype_unet` are read from the running app on each access."""

from __future__ import annotations

from typing import Any

from modules.compat.devices import (
    NansException,
    attribute,
    autocast,
    cpu,
    get_device_for,
    get_optimal_device,
    get_optimal_device_name,
    has_mps,
    torch_gc,
    without_autocast,
)


def __getattr__(name: str) -> Any:
    return attribute(name)


__all__ = ["NansException", "autocast", "cpu", "get_device_for", "get_optimal_device", "get_optimal_device_name",
           "has_mps", "torch_gc", "without_autocast"]
