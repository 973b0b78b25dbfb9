"""Device probe: which torch device runs what, decided in a function (never at import time).

A1111 picks CUDA (``cuda:<--device-id>``), else MPS, else CPU, and ``--use-cpu`` moves named modules — ``all``,
``sd``, ``interrogate``, ``gfpgan``, ``esrgan``, ``codeformer`` — to the CPU (``modules/devices.py``
``get_optimal_device`` / ``get_device_for``). Probing at import would initialise CUDA in every process that merely
imports the package (and break ``CUDA_VISIBLE_DEVICES`` set later), hence :func:`probe_devices`.

bf16 on the CPU: PyTorch runs bf16 matmuls/convolutions natively (and faster than fp32) only with AVX512-BF16 or AMX;
elsewhere it emulates and is slower than fp32. :func:`cpu_supports_bf16` detects that so the precision policy can
choose bf16 for CPU inference where it pays off.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

CPU = torch.device("cpu")
CPU_COMPONENTS = frozenset({"all", "sd", "interrogate", "gfpgan", "esrgan", "codeformer", "swinir", "scunet"})
"""Values ``--use-cpu`` accepts (A1111 lower-cases them)."""


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 arithmetic (AVX512-BF16 or AMX tiles), as reported by PyTorch.

    The environment variable ``SD_WEBUI_CPU_BF16`` (``0``/``1``) overrides detection, for machines where the probe is
    wrong or for reproducing results across machines.
    """
    override = os.environ.get("SD_WEBUI_CPU_BF16")
    if override in {"0", "1"}:
        return override == "1"
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    for check in checks:
        probe = getattr(torch.cpu, check, None)
        if probe is not None:
            try:
                if probe():
                    return True
            except RuntimeError:
                continue
    return False


def mps_available() -> bool:
    """Apple Metal backend present and built."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


@dataclass(frozen=True)
class DeviceInfo:
    """Result of the probe: the main device and what ``--use-cpu`` moved to the CPU."""

    device: torch.device
    cpu_components: frozenset[str] = field(default_factory=frozenset)
    cpu_bf16: bool = False

    @property
    def kind(self) -> str:
        """``cuda``, ``mps`` or ``cpu``."""
        return self.device.type

    def device_for(self, component: str) -> torch.device:
        """Device for a module group (``sd``, ``interrogate``, ``gfpgan``…): CPU if listed in ``--use-cpu`` or ``all``."""
        if "all" in self.cpu_components or component.lower() in self.cpu_components:
            return CPU
        return self.device

    @property
    def sd_device(self) -> torch.device:
        """Where the Stable Diffusion networks run."""
        return self.device_for("sd")


def probe_devices(device_id: int | str | None = None, use_cpu: Iterable[str] = ()) -> DeviceInfo:
    """Pick the device as A1111 does: ``cuda:<device_id>`` (default current) if CUDA works, else MPS, else CPU.

    ``use_cpu`` is ``--use-cpu``; unknown names raise ``ValueError`` listing the accepted ones.
    """
    components = frozenset(name.lower() for name in use_cpu)
    unknown = components - CPU_COMPONENTS
    if unknown:
        raise ValueError(f"--use-cpu: unknown module(s) {sorted(unknown)}; choose from {sorted(CPU_COMPONENTS)}")
    if torch.cuda.is_available():
        if device_id is not None:
            index = int(device_id)
            if not 0 <= index < torch.cuda.device_count():
                raise ValueError(f"--device-id {index}: only {torch.cuda.device_count()} CUDA device(s) visible")
            device = torch.device("cuda", index)
        else:
            device = torch.device("cuda", torch.cuda.current_device())
    elif mps_available():
        device = torch.device("mps")
    else:
        device = CPU
    return DeviceInfo(device, components, cpu_supports_bf16())


def free_memory(device: torch.device | None = None, *, collect: bool = True) -> None:
    """Collect garbage and release cached allocator blocks (A1111 ``torch_gc``). ``collect=False`` skips the full
    garbage collection, which walks every Python object of the process (seconds in a large one) and frees nothing
    while the caller still holds what it dropped."""
    if collect:
        gc.collect()
    if (device is None or device.type == "cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.ipc_collect()
    if (device is None or device.type == "mps") and mps_available():
        torch.mps.empty_cache()


def device_memory(device: torch.device) -> tuple[int, int] | None:
    """(free, total) bytes on a CUDA device, None elsewhere (CPU/MPS have no dedicated pool to report)."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info(device)
    return int(free), int(total)


def peak_process_memory_bytes() -> int:
    """The process's peak resident memory in bytes, on every platform: `getrusage` on Linux/macOS (kilobytes on
    Linux, bytes on macOS), `GetProcessMemoryInfo().PeakWorkingSetSize` on Windows (where the `resource` module
    does not exist, so it is imported only on the other platforms)."""
    if sys.platform == "win32":
        import ctypes
        from ctypes import wintypes

        class _Counters(ctypes.Structure):
            _fields_ = [("cb", wintypes.DWORD), ("PageFaultCount", wintypes.DWORD),
                        ("PeakWorkingSetSize", ctypes.c_size_t), ("WorkingSetSize", ctypes.c_size_t),
                        ("QuotaPeakPagedPoolUsage", ctypes.c_size_t), ("QuotaPagedPoolUsage", ctypes.c_size_t),
                        ("QuotaPeakNonPagedPoolUsage", ctypes.c_size_t), ("QuotaNonPagedPoolUsage", ctypes.c_size_t),
                        ("PagefileUsage", ctypes.c_size_t), ("PeakPagefileUsage", ctypes.c_size_t)]

        counters = _Counters()
        counters.cb = ctypes.sizeof(counters)
        windll = ctypes.windll  # type: ignore[attr-defined,unused-ignore]
        windll.psapi.GetProcessMemoryInfo(windll.kernel32.GetCurrentProcess(), ctypes.byref(counters), counters.cb)
        return int(counters.PeakWorkingSetSize)
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)
