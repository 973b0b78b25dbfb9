"""CPU fast paths of the owned networks: oneDNN linears with prepacked weights and channels_last activations.

Chosen once per model at load (:func:`enable_cpu_fast_path`, called by the model manager unless
``--disable-opt-cpu-fast-path``); each path falls back to the plain eager one when it cannot run here.

* **Linears** (:class:`FastLinear`, used by every transformer linear of the UNet): with the fast path on, inference
  (no autograd) on the CPU in float32 or bfloat16 calls oneDNN's ``torch.ops.mkldnn._linear_pointwise`` with the
  weight reordered once into oneDNN's blocked layout (``torch.ops.mkldnn._reorder_linear_weight``) instead of MKL's
  ``addmm``, which re-reads the plain row-major weight every call. Measured on the SD1.5 shapes (docs/benchmarks.md
  "CPU fast paths"): 1.15–1.4× the ``F.linear`` rate. The plain ``weight`` parameter stays the source of truth
  (state dicts, LoRA patching, merging, training); the packed copy is keyed on the weight's identity, storage
  pointer, in-place version counter, dtype and device and re-made when any of them changes, so weight patches
  written with ``param.copy_`` (version bump) or parameter replacement (new storage) are always seen. Autograd
  (training) always takes the plain path: the packed op has no backward.
* **channels_last**: the UNet's and VAE's 4-D weights are stored NHWC, so oneDNN's convolutions run in their native
  layout without reordering activations every call, the SpatialTransformer's NCHW→tokens permute is free and
  GroupNorm/SiLU/adds stay in NHWC (the same conversion as A1111's ``--opt-channelslast``).

On CUDA nothing changes (the manager only enables this for the CPU device): cuBLAS/cuDNN pick their own layouts and
``FastLinear`` is a plain ``nn.Linear`` there. Missing oneDNN (``torch.backends.mkldnn.is_available()`` false,
non-x86 builds), a dtype oneDNN cannot run on this CPU (bfloat16 without AVX512-BF16/AMX support, float16) or a
failing probe call disables the linear path with one log line; the plain path is used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

log = logging.getLogger(__name__)

_PackKey = tuple[int, int, int, torch.dtype, torch.device]


class FastLinear(nn.Linear):
    """``nn.Linear`` (same parameters and state-dict keys) that can run through oneDNN with a prepacked weight.

    ``fast`` is off by default; :func:`enable_cpu_fast_path` turns it on for a loaded model. With it off, or while
    autograd records, or for inputs on another device/dtype than the weight, ``forward`` is exactly ``F.linear``."""

    fast: bool = False
    pack: bool = True
    """With ``fast``: reorder the weight once into oneDNN's layout (True) or hand oneDNN the plain weight each call
    (False: no second copy of the weight in memory, somewhat slower)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._packed: tuple[_PackKey, Tensor] | None = None

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight
        if (self.fast and x.device.type == "cpu" and weight.device.type == "cpu" and x.dtype == weight.dtype
                and not torch.is_grad_enabled()):
            # inference tensors (made under torch.inference_mode) have no version counter: never cached
            packed = self.packed_weight() if self.pack and not weight.is_inference() else weight
            return torch.ops.mkldnn._linear_pointwise(x, packed, self.bias, "none", [], "")
        return F.linear(x, weight, self.bias)

    def packed_weight(self) -> Tensor:
        """The oneDNN-reordered weight, re-made whenever the parameter changed (see the module docstring)."""
        weight = self.weight
        key: _PackKey = (id(weight), weight.data_ptr(), weight._version, weight.dtype, weight.device)
        if self._packed is None or self._packed[0] != key:
            self._packed = (key, torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None))
        return self._packed[1]

    def drop_packed(self) -> None:
        """Forget the packed copy (frees its memory; it is re-made on the next fast call)."""
        self._packed = None


class FastConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters and keys) that can run through oneDNN's ``_convolution_pointwise`` with the
    weight reordered once (``torch.ops.mkldnn._reorder_convolution_weight``) and channels_last activations.

    ``F.conv2d`` on the CPU reorders the weight into oneDNN's blocked layout on every call; at the UNet's low
    resolutions (8², 16² latents with 1280 channels) that copy costs as much as the arithmetic (measured 1.4–2.3×
    faster packed there, bit-identical). The packed copy follows the weight like :class:`FastLinear`'s and is also
    keyed on the input's shape (oneDNN picks the blocked format for it). Off (``fast`` False), under autograd, for
    non-zero padding modes or string paddings, or for inputs on another device/dtype: exactly ``nn.Conv2d``."""

    fast: bool = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        self._packed: tuple[tuple[object, ...], Tensor] | None = None

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight
        if (self.fast and x.device.type == "cpu" and weight.device.type == "cpu" and x.dtype == weight.dtype
                and x.dim() == 4 and not torch.is_grad_enabled() and self.padding_mode == "zeros"
                and not isinstance(self.padding, str) and not weight.is_inference()):
            x = x.contiguous(memory_format=torch.channels_last)
            return torch.ops.mkldnn._convolution_pointwise(
                x, self._packed_for(x), self.bias, list(self.padding), list(self.stride), list(self.dilation),
                self.groups, "none", [], "")
        return super().forward(x)

    def _packed_for(self, x: Tensor) -> Tensor:
        weight = self.weight
        key = (id(weight), weight.data_ptr(), weight._version, weight.dtype, tuple(x.shape))
        if self._packed is None or self._packed[0] != key:
            packed = torch.ops.mkldnn._reorder_convolution_weight(
                weight.detach(), list(self.padding), list(self.stride), list(self.dilation), self.groups,
                list(x.shape))
            self._packed = (key, packed)
        return self._packed[1]

    def drop_packed(self) -> None:
        """Forget the packed copy."""
        self._packed = None


@dataclass(frozen=True)
class FastPathReport:
    """What :func:`enable_cpu_fast_path` switched on for one network."""

    linear: bool
    channels_last: bool
    packed: bool = False
    reason: str = ""
    """Why the linear path is off ("" when on)."""


def linear_fast_path_problem(dtype: torch.dtype) -> str:
    """Why the oneDNN linear cannot run here for ``dtype`` ("" when it can): no oneDNN, an unsupported dtype, or a
    probe call that fails or disagrees with ``F.linear``."""
    if not torch.backends.mkldnn.is_available():
        return "oneDNN (mkldnn) is not available in this PyTorch build"
    if dtype not in (torch.float32, torch.bfloat16):
        return f"no oneDNN CPU fast path for {dtype}"
    try:
        if dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return "this CPU has no oneDNN bfloat16 support"
        x = torch.linspace(-1.0, 1.0, 3 * 8).reshape(3, 8).to(dtype)
        w = torch.linspace(-0.5, 0.5, 4 * 8).reshape(4, 8).to(dtype)
        b = torch.linspace(0.0, 1.0, 4).to(dtype)
        packed = torch.ops.mkldnn._reorder_linear_weight(w, None)
        out = torch.ops.mkldnn._linear_pointwise(x, packed, b, "none", [], "")
        image = torch.linspace(-1.0, 1.0, 2 * 8 * 5 * 5).reshape(2, 8, 5, 5).to(dtype)
        kernel = torch.linspace(-0.3, 0.3, 4 * 8 * 3 * 3).reshape(4, 8, 3, 3).to(dtype)
        image, kernel = image.contiguous(memory_format=torch.channels_last), kernel.contiguous(
            memory_format=torch.channels_last)
        conv_packed = torch.ops.mkldnn._reorder_convolution_weight(kernel, [1, 1], [1, 1], [1, 1], 1,
                                                                    list(image.shape))
        conv = torch.ops.mkldnn._convolution_pointwise(image, conv_packed, b, [1, 1], [1, 1], [1, 1], 1, "none", [],
                                                       "")
    except (RuntimeError, AttributeError, NotImplementedError) as error:
        return f"the oneDNN linear/convolution failed ({str(error).splitlines()[0] if str(error) else type(error).__name__})"
    tol = 5e-2 if dtype == torch.bfloat16 else 1e-5
    if not torch.allclose(out.float(), F.linear(x, w, b).float(), atol=tol):
        return "the oneDNN linear disagrees with F.linear"
    if not torch.allclose(conv.float(), F.conv2d(image, kernel, b, padding=1).float(), atol=tol * 10):
        return "the oneDNN convolution disagrees with F.conv2d"
    return ""


def linear_weight_bytes(module: nn.Module) -> int:
    """Bytes of the weights of ``module``'s :class:`FastLinear` and :class:`FastConv2d` layers (what packing
    copies)."""
    return sum(sub.weight.numel() * sub.weight.element_size() for sub in module.modules()
               if isinstance(sub, (FastLinear, FastConv2d)))


def should_pack(module: nn.Module, available_bytes: int) -> bool:
    """Pack the weights when the packed copies take at most a quarter of the available RAM (SD1.5's UNet: 3.4 GB
    in fp32, 1.7 GB in bf16; SDXL's 10 GB in fp32 is not packed on a 24 GB machine: its linears then get the plain
    weights handed to oneDNN and its convolutions run as ``F.conv2d`` in channels_last)."""
    return linear_weight_bytes(module) <= available_bytes // 4


def enable_cpu_fast_path(module: nn.Module, *, linear: bool = True, channels_last: bool = True,
                         pack: bool = True, name: str = "model") -> FastPathReport:
    """Switch ``module`` (a UNet or VAE on the CPU) to the fast paths; logs one line when the linear path falls back.

    ``channels_last`` converts the 4-D weights in place of the parameters (``module.to(memory_format=…)``);
    ``linear`` turns on every :class:`FastLinear` after a probe for the module's dtype, with prepacked weights when
    ``pack``."""
    params = list(module.parameters())
    dtype = params[0].dtype if params else torch.float32
    reason = linear_fast_path_problem(dtype) if linear else "disabled"
    use_linear = linear and not reason
    if linear and reason:
        log.info("%s: CPU fast linear path off (%s); using the plain path", name, reason)
    for sub in module.modules():
        if isinstance(sub, FastLinear):
            sub.fast = use_linear
            sub.pack = pack
            sub.drop_packed()
        elif isinstance(sub, FastConv2d):
            sub.fast = use_linear and channels_last and pack
            sub.drop_packed()
    if channels_last:
        module.to(memory_format=torch.channels_last)
    return FastPathReport(linear=use_linear, channels_last=channels_last, packed=use_linear and pack, reason=reason)


def disable_cpu_fast_path(module: nn.Module) -> None:
    """Back to the plain path: FastLinear layers off (packed copies freed), 4-D weights contiguous again."""
    for sub in module.modules():
        if isinstance(sub, (FastLinear, FastConv2d)):
            sub.fast = False
            sub.drop_packed()
    module.to(memory_format=torch.contiguous_format)
