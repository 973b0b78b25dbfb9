"""FP8 weight storage: A1111 1.8's ``fp8_storage`` ("FP8 weight") and ``cache_fp16_weight`` settings.

A1111 (``sd_models.load_model_weights``, ``check_fp8``): when "FP8 weight" is "Enable", or "Enable for SDXL" and the
model is SDXL, every ``torch.nn.Linear`` and ``torch.nn.Conv2d`` of the diffusion model is converted with
``module.to(torch.float8_e4m3fn)`` — weight and bias — which halves the weight memory of an fp16 model (quarters an
fp32 one). At run time A1111 casts each layer to the compute dtype when it is used (``devices.manual_cast``:
``self.to(target_dtype)`` before the layer's forward and back after it; on the CPU ``torch.autocast`` in bf16 does
the same cast). With "Cache FP16 weight for LoRA" it first keeps ``module.fp16_weight`` / ``fp16_bias``
(``weight.clone().cpu().half()``), and LoRA computes ``weight + Δ`` from that copy instead of the fp8-rounded weight
before writing it back in fp8 (one rounding instead of two); it costs the fp16 copy in RAM.

Here :func:`store_fp8` does this to one module tree (the UNet; A1111 also converts the text encoders' layers, which
are small). The per-layer cast is a forward pre-hook / forward hook pair registered on our own layer instances:
before the layer runs its fp8 parameters' ``.data`` is replaced by a compute-dtype copy, afterwards the fp8 tensor
is put back, so at most one layer's weights exist in the compute dtype at a time. Parameters keep their names, so
state-dict keys, the offloader and the LoRA patcher (:func:`fp16_copy`) see the same model. Infotext: A1111 writes
nothing for FP8, neither do we. ``Disable`` leaves the model untouched (bit-identical results).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

FP8_DTYPE = torch.float8_e4m3fn
"""A1111 stores in ``float8_e4m3fn`` (4 exponent bits, 3 mantissa bits, max 448)."""
STORED_LAYERS = (nn.Linear, nn.Conv2d)
"""The layer types A1111 converts."""
FP8_CHOICES = ("Disable", "Enable for SDXL", "Enable")


@dataclass(frozen=True)
class WeightStorage:
    """The two settings at one moment (a job's snapshot or the global settings)."""

    fp8_storage: str = "Disable"
    cache_fp16_weight: bool = False

    def fp8_for(self, is_sdxl: bool) -> bool:
        """A1111 ``check_fp8``: "Enable" always, "Enable for SDXL" only for SDXL models."""
        return self.fp8_storage == "Enable" or (self.fp8_storage == "Enable for SDXL" and is_sdxl)


@dataclass
class Fp8State:
    """What :func:`store_fp8` did to a module tree."""

    compute_dtype: torch.dtype
    layers: int
    bytes_before: int
    bytes_after: int
    fp16_cached: bool
    handles: list[RemovableHandle] = field(default_factory=list, repr=False)

    def summary(self) -> str:
        """The log line: layers converted and the weight bytes before → after."""
        cached = ", FP16 copies kept for LoRA" if self.fp16_cached else ""
        return (f"FP8 weight: {self.layers} Linear/Conv2d layers stored as float8_e4m3fn, computed in "
                f"{str(self.compute_dtype).removeprefix('torch.')}; UNet weights {self.bytes_before / 2**20:.1f} MiB "
                f"-> {self.bytes_after / 2**20:.1f} MiB{cached}")


_STATES: weakref.WeakKeyDictionary[nn.Module, Fp8State] = weakref.WeakKeyDictionary()
"""Registry: module tree -> its FP8 state."""
_FP16_COPIES: dict[int, tuple[weakref.ref[Tensor], Tensor]] = {}
"""Registry: ``id(fp8 parameter)`` -> (the parameter, its fp16 copy) for ``cache_fp16_weight``; an entry goes when its
parameter is collected (tensors compare elementwise, so they cannot be weak dictionary keys)."""


_LAYER_DTYPES: weakref.WeakKeyDictionary[nn.Module, tuple[torch.dtype, dict[str, Tensor]]] = (
    weakref.WeakKeyDictionary())
"""Registry: converted layer -> (compute dtype, the fp8 tensors set aside during its forward)."""


def _weight_bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


def _cast_in(module: nn.Module, _args: tuple[object, ...]) -> None:
    """Forward pre-hook: the layer's fp8 parameters become compute-dtype copies for this call."""
    state = _LAYER_DTYPES.get(module)
    if state is None:
        return
    dtype, stored = state
    if stored:
        return  # re-entered before the forward hook ran: the cast copies are already in place
    for name, param in module.named_parameters(recurse=False):
        if param.dtype == FP8_DTYPE:
            stored[name] = param.data
            param.data = param.data.to(dtype)


def _cast_out(module: nn.Module, _args: tuple[object, ...], _output: object) -> None:
    """Forward hook (always called): the fp8 tensors go back; the compute-dtype copies are freed."""
    state = _LAYER_DTYPES.get(module)
    if state is None:
        return
    _, stored = state
    for name, tensor in stored.items():
        getattr(module, name).data = tensor
    stored.clear()


@torch.no_grad()
def store_fp8(module: nn.Module, compute_dtype: torch.dtype, *, keep_fp16: bool = False) -> Fp8State:
    """Convert every Linear/Conv2d of ``module`` to fp8 storage, computed in ``compute_dtype`` (A1111 rules in the
    module docstring); ``keep_fp16`` keeps an fp16 copy of each weight and bias for LoRA. Idempotent."""
    existing = _STATES.get(module)
    if existing is not None:
        return existing
    before = _weight_bytes(module)
    state = Fp8State(compute_dtype, 0, before, before, keep_fp16)
    for layer in module.modules():
        if not isinstance(layer, STORED_LAYERS):
            continue
        for param in layer.parameters(recurse=False):
            if not param.is_floating_point():
                continue
            if keep_fp16:
                _FP16_COPIES[id(param)] = (weakref.ref(param), param.data.to("cpu", torch.float16, copy=True))
                weakref.finalize(param, _FP16_COPIES.pop, id(param), None)
            param.data = param.data.to(FP8_DTYPE)
        _LAYER_DTYPES[layer] = (compute_dtype, {})
        state.handles.append(layer.register_forward_pre_hook(_cast_in))
        state.handles.append(layer.register_forward_hook(_cast_out, always_call=True))
        state.layers += 1
    state.bytes_after = _weight_bytes(module)
    _STATES[module] = state
    return state


def fp8_state(module: nn.Module) -> Fp8State | None:
    """The FP8 state of a module tree :func:`store_fp8` converted, else None."""
    return _STATES.get(module)


def fp16_copy(param: Tensor) -> Tensor | None:
    """The fp16 copy of an fp8-stored parameter kept by ``cache_fp16_weight`` (the base LoRA patches), else None."""
    entry = _FP16_COPIES.get(id(param))
    return entry[1] if entry is not None and entry[0]() is param else None


def compute_dtype(module: nn.Module) -> torch.dtype:
    """The dtype ``module`` computes in: the FP8 compute dtype when its layers are fp8-stored, else the dtype of its
    first parameter (what callers that cast inputs to "the UNet's dtype" need)."""
    state = _STATES.get(module)
    if state is not None:
        return state.compute_dtype
    return next(module.parameters()).dtype
