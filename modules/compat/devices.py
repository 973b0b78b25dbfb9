"""A1111 `modules.devices` for extensions: the running app's device and dtypes (read on each access).

`device`, `dtype`, `dtype_vae`, `dtype_unet`, `dtype_inference` (module attributes read through `attribute`);
`cpu`; `get_optimal_device()`, `get_optimal_device_name()`, `get_device_for(task)`, `torch_gc()`,
`autocast(disable=False)`, `without_autocast(disable=False)`, `has_mps()`, `NansException`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

from modules.compat.host import HOST
from modules.memory.devices import free_memory, mps_available

cpu = torch.device("cpu")


class NansException(Exception):
    """A1111's exception for NaNs in a tensor (extensions catch it by name)."""


def get_optimal_device() -> torch.device:
    """The device generation runs on."""
    device: torch.device = HOST.current().models.policy.device
    return device


def get_optimal_device_name() -> str:
    return str(get_optimal_device())


def get_device_for(task: str) -> torch.device:
    """A1111 answers per `--use-cpu` task; here every task runs where generation runs unless `--use-cpu` names it."""
    use_cpu = {str(t).lower() for t in (HOST.current().flags.use_cpu or ())}
    return cpu if task.lower() in use_cpu or "all" in use_cpu else get_optimal_device()


def torch_gc() -> None:
    """Free cached device memory (A1111 `torch_gc`)."""
    free_memory(get_optimal_device())


def has_mps() -> bool:
    return mps_available()


def autocast(disable: bool = False) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision for the model's dtype on its device; nothing for fp32 or the CPU (A1111 `autocast`)."""
    device = get_optimal_device()
    dtype = HOST.current().models.policy.dtypes.unet
    if disable or dtype == torch.float32 or device.type == "cpu":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def without_autocast(disable: bool = False) -> contextlib.AbstractContextManager[Any]:
    """Turn autocast off inside (A1111 `without_autocast`)."""
    if disable or not torch.is_autocast_enabled():
        return contextlib.nullcontext()
    return torch.autocast(get_optimal_device().type, enabled=False)


_DYNAMIC: dict[str, Callable[[], Any]] = {
    "device": get_optimal_device,
    "dtype": lambda: HOST.current().models.policy.dtypes.unet,
    "dtype_unet": lambda: HOST.current().models.policy.dtypes.unet,
    "dtype_inference": lambda: HOST.current().models.policy.dtypes.unet,
    "dtype_vae": lambda: HOST.current().models.policy.dtypes.vae,
    "device_interrogate": lambda: get_device_for("interrogate"),
    "device_gfpgan": lambda: get_device_for("gfpgan"),
    "device_esrgan": lambda: get_device_for("esrgan"),
    "device_codeformer": lambda: get_device_for("codeformer"),
}


def attribute(name: str) -> Any:
    """A changing `modules.devices` name."""
    getter = _DYNAMIC.get(name)
    if getter is None:
        raise AttributeError(f"module 'modules.devices' has no attribute {name!r} in this web UI")
    return getter()
