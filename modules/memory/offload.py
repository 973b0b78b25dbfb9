"""``--medvram`` / ``--medvram-sdxl`` / ``--lowvram`` as declarative policies, and the one object that applies them.

A1111 (``modules/lowvram.py``):

* normal – text encoder, UNet and VAE all live on the GPU.
* ``--medvram`` – only one of them is on the GPU at a time; using one sends the others to the CPU.
* ``--medvram-sdxl`` – ``--medvram`` only while an SDXL-family model is loaded.
* ``--lowvram`` – as medvram, and the UNet itself is split: its small shell (time embedding, output head) stays on
  the GPU while it is in use, and its big blocks (``input_blocks.N``, ``middle_block``, ``output_blocks.N``) are moved
  to the GPU one at a time, just before each runs.

:class:`OffloadPolicy` states which mode applies; :class:`ModelOffloader` carries it out with forward pre-hooks
registered on the module *instances* (never by patching classes). Every move is reported to a :class:`DeviceBudget`,
which keeps the bytes of weights resident on the device per unit and their peak — this is how the effect of a policy
is measured on a CPU-only machine: the "device" is then ``cpu`` (moves are no-ops) but the accounting is identical to
what the same calls would place on a GPU. Activations are not counted (only weights); on CUDA,
``torch.cuda.max_memory_allocated`` measures both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

OffloadMode = Literal["none", "medvram", "lowvram"]
STREAMED_COMPONENT = "unet"
UNET_STREAMED_BLOCKS = ("input_blocks", "middle_block", "output_blocks")
"""In execution order; the ModuleLists are streamed per entry."""


@dataclass(frozen=True)
class OffloadPolicy:
    """What sits on the device when. ``exclusive``: one component at a time; ``stream``: components split in blocks."""

    mode: OffloadMode = "none"

    @property
    def exclusive(self) -> bool:
        return self.mode in ("medvram", "lowvram")

    @property
    def stream(self) -> frozenset[str]:
        return frozenset({STREAMED_COMPONENT}) if self.mode == "lowvram" else frozenset()


def resolve_offload_policy(
    *, medvram: bool = False, medvram_sdxl: bool = False, lowvram: bool = False, family: str | None = None
) -> OffloadPolicy:
    """``--lowvram`` wins over ``--medvram``; ``--medvram-sdxl`` acts only for families starting with ``sdxl``."""
    if lowvram:
        return OffloadPolicy("lowvram")
    if medvram or (medvram_sdxl and family is not None and family.startswith("sdxl")):
        return OffloadPolicy("medvram")
    return OffloadPolicy("none")


def tensor_bytes(module: nn.Module, *, recurse: bool = True) -> int:
    """Bytes of a module's parameters and buffers (its own only when ``recurse`` is false)."""
    tensors = [*module.parameters(recurse=recurse), *module.buffers(recurse=recurse)]
    return sum(t.numel() * t.element_size() for t in tensors)


class DeviceBudgetExceeded(RuntimeError):
    """Placing a unit on the device would exceed the simulated budget."""


class DeviceBudget:
    """Accounting of weight bytes resident on the device, per unit, with the peak since the last reset.

    ``limit`` (bytes) makes it a simulated device of that size: exceeding it raises :class:`DeviceBudgetExceeded`.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.resident: dict[str, int] = {}
        self.peak = 0

    @property
    def current(self) -> int:
        return sum(self.resident.values())

    def place(self, unit: str, nbytes: int) -> None:
        self.resident[unit] = nbytes
        if self.limit is not None and self.current > self.limit:
            del self.resident[unit]
            raise DeviceBudgetExceeded(
                f"placing {unit} ({nbytes} bytes) needs {self.current + nbytes} bytes on the device, over the "
                f"{self.limit}-byte budget; try --medvram or --lowvram"
            )
        self.peak = max(self.peak, self.current)

    def evict(self, unit: str) -> None:
        self.resident.pop(unit, None)

    def reset_peak(self) -> None:
        self.peak = self.current


def stream_units(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The blocks lowvram streams: each ``input_blocks.N``, ``middle_block``, each ``output_blocks.N`` (LDM UNet
    layout); for a module without them, its direct children that hold weights."""
    units: list[tuple[str, nn.Module]] = []
    for name in UNET_STREAMED_BLOCKS:
        found = getattr(module, name, None)
        if isinstance(found, nn.ModuleList):
            units += [(f"{name}.{index}", block) for index, block in enumerate(found)]
        elif isinstance(found, nn.Module):
            units.append((name, found))
    if not units:
        units = [(name, child) for name, child in module.named_children() if tensor_bytes(child) > 0]
    return units


def _move_own(module: nn.Module, device: torch.device) -> None:
    module._apply(lambda tensor: tensor.to(device), recurse=False)


class ModelOffloader:
    """Applies an :class:`OffloadPolicy` to named components (``text_encoder``, ``unet``, ``vae``…).

    A component is activated automatically when any of its submodules runs (forward pre-hooks on each submodule, so
    ``vae.decode`` or a text encoder's ``encode_tokens`` count too); :meth:`use` activates one explicitly, e.g. to
    read a parameter directly. :meth:`close` removes every hook.
    """

    def __init__(
        self,
        components: Mapping[str, nn.Module],
        policy: OffloadPolicy,
        device: torch.device | str,
        *,
        offload_device: torch.device | str = "cpu",
        budget: DeviceBudget | None = None,
    ) -> None:
        self.components = dict(components)
        self.policy = policy
        self.device = torch.device(device)
        self.offload_device = torch.device(offload_device)
        self.budget = budget or DeviceBudget()
        self._active: str | None = None
        self._streamed_block: tuple[str, nn.Module] | None = None
        self._handles: list[Any] = []
        self._units: dict[str, list[tuple[str, nn.Module]]] = {}
        self._shell_modules: dict[str, list[nn.Module]] = {}
        for name, module in self.components.items():
            if name in policy.stream:
                self._prepare_streaming(name, module)
            if policy.exclusive:
                # on every submodule, so that method entry points (vae.decode, encode_tokens) that never call the
                # component's own forward still activate it at their first layer
                hook = self._component_hook(name)
                self._handles += [sub.register_forward_pre_hook(hook) for sub in module.modules()]
        if not policy.exclusive:
            for name, module in self.components.items():
                module.to(self.device)
                self.budget.place(name, tensor_bytes(module))
        else:
            for module in self.components.values():
                module.to(self.offload_device)

    def _prepare_streaming(self, name: str, module: nn.Module) -> None:
        units = stream_units(module)
        inside_units = {id(sub) for _, block in units for sub in block.modules()}
        self._units[name] = units
        self._shell_modules[name] = [sub for sub in module.modules() if id(sub) not in inside_units]
        for unit_name, block in units:
            self._handles.append(block.register_forward_pre_hook(self._block_hook(name, unit_name, block)))

    def _component_hook(self, name: str) -> Any:
        def hook(_module: nn.Module, _args: Any) -> None:
            if self._active != name:
                self.activate(name)
        return hook

    def _block_hook(self, component: str, unit_name: str, block: nn.Module) -> Any:
        def hook(_module: nn.Module, _args: Any) -> None:
            self.activate(component)
            current = self._streamed_block
            if current is not None and current[1] is block:
                return
            self._evict_streamed_block(component)
            block.to(self.device)
            self.budget.place(f"{component}/{unit_name}", tensor_bytes(block))
            self._streamed_block = (unit_name, block)
        return hook

    def _evict_streamed_block(self, component: str) -> None:
        if self._streamed_block is not None:
            unit_name, block = self._streamed_block
            block.to(self.offload_device)
            self.budget.evict(f"{component}/{unit_name}")
            self._streamed_block = None

    def activate(self, name: str) -> nn.Module:
        """Make ``name`` usable on the device, evicting the others under an exclusive policy."""
        module = self.components[name]
        if not self.policy.exclusive or self._active == name:
            return module
        if self._active is not None:
            self._deactivate(self._active)
        if name in self._units:
            shell_bytes = 0
            for sub in self._shell_modules[name]:
                _move_own(sub, self.device)
                shell_bytes += tensor_bytes(sub, recurse=False)
            self.budget.place(f"{name}/shell", shell_bytes)
        else:
            module.to(self.device)
            self.budget.place(name, tensor_bytes(module))
        self._active = name
        return module

    def _deactivate(self, name: str) -> None:
        module = self.components[name]
        if name in self._units:
            self._evict_streamed_block(name)
            for sub in self._shell_modules[name]:
                _move_own(sub, self.offload_device)
            self.budget.evict(f"{name}/shell")
        else:
            module.to(self.offload_device)
            self.budget.evict(name)
        self._active = None

    @contextlib.contextmanager
    def use(self, name: str) -> Iterator[nn.Module]:
        """``with offloader.use("vae") as vae: vae.decode(z)`` — the component is on the device inside the block."""
        yield self.activate(name)

    def offload_all(self) -> None:
        """Move every component off the device (A1111 "Unload SD checkpoint to RAM")."""
        if self._active is not None:
            self._deactivate(self._active)
        for name, module in self.components.items():
            module.to(self.offload_device)
            self.budget.evict(name)

    def close(self) -> None:
        """Remove all hooks; components stay where they are."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
