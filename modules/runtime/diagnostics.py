"""Start-up diagnostics: what torch sees, what was chosen, how long loading took, and a clear port-clash message.

Users otherwise check by hand (``import torch; torch.__version__; torch.cuda.is_available(); torch.version.cuda``);
the start-up text answers those questions at once.  The load-time breakdown follows A1111's ``modules/timer.py``:
``Model loaded in 3.2s (load weights from disk: 0.4s, create model: 0.1s, apply weights to model: 2.6s).`` where
entries under 0.1 s are left out of the parentheses.
"""

from __future__ import annotations

import errno
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = [
    "GpuInfo",
    "StageTimer",
    "TorchInfo",
    "check_port",
    "format_load_times",
    "port_in_use_message",
    "probe_torch",
    "startup_diagnostics",
]


@dataclass(frozen=True)
class GpuInfo:
    """One CUDA device as torch reports it."""

    index: int
    name: str
    total_memory: int
    capability: tuple[int, int]


@dataclass(frozen=True)
class TorchInfo:
    """torch's view of the machine: versions and devices."""

    python_version: str
    torch_version: str
    cuda_version: str | None
    cuda_available: bool
    gpus: tuple[GpuInfo, ...] = ()
    mps_available: bool = False


def probe_torch() -> TorchInfo:
    """Ask torch (imported here, not at module import) for its version, CUDA build and visible GPUs."""
    import torch

    available = bool(torch.cuda.is_available())
    gpus: list[GpuInfo] = []
    if available:
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            gpus.append(GpuInfo(index, props.name, int(props.total_memory), (props.major, props.minor)))
    mps = getattr(torch.backends, "mps", None)
    return TorchInfo(
        python_version=sys.version.split()[0],
        torch_version=str(torch.__version__),
        cuda_version=torch.version.cuda,
        cuda_available=available,
        gpus=tuple(gpus),
        mps_available=bool(mps is not None and mps.is_available()),
    )


def _gib(n: int) -> str:
    return f"{n / 1024 ** 3:.1f} GiB"


def startup_diagnostics(device: str, dtype: str, attention: str, *, vae_dtype: str | None = None,
                        info: TorchInfo | None = None) -> str:
    """Multi-line start-up text: Python/torch/CUDA versions, GPUs with memory, and the chosen device/dtype/attention.

    ``device``, ``dtype`` and ``attention`` are what the memory layer decided (e.g. ``cuda:0``, ``float16``,
    ``sdp``); ``info`` defaults to :func:`probe_torch`.
    """
    info = probe_torch() if info is None else info
    build = f"CUDA build {info.cuda_version}" if info.cuda_version else "CPU-only build (torch.version.cuda is None)"
    lines = [f"Python {info.python_version}, torch {info.torch_version} ({build}), "
             f"CUDA available: {info.cuda_available}"]
    for gpu in info.gpus:
        lines.append(f"GPU {gpu.index}: {gpu.name}, {_gib(gpu.total_memory)}, "
                     f"compute capability {gpu.capability[0]}.{gpu.capability[1]}")
    if not info.cuda_available:
        if info.mps_available:
            lines.append("No CUDA GPU; Apple MPS is available.")
        elif info.cuda_version:
            lines.append("No CUDA GPU visible to torch (driver missing or too old? check nvidia-smi).")
        else:
            lines.append("No CUDA GPU: this torch build has no CUDA support; install a CUDA build for GPU use.")
    chosen = f"Device: {device}, dtype: {dtype}"
    if vae_dtype is not None:
        chosen += f", VAE dtype: {vae_dtype}"
    lines.append(f"{chosen}, attention: {attention}")
    return "\n".join(lines)


# -- load-time breakdown ------------------------------------------------------------------------------------------

def format_load_times(total: float, parts: Mapping[str, float], *, threshold: float = 0.1) -> str:
    """``"3.2s (load weights from disk: 0.4s, create model: 0.1s)"``; parts under ``threshold`` s are omitted."""
    shown = [f"{name}: {seconds:.1f}s" for name, seconds in parts.items() if seconds >= threshold]
    return f"{total:.1f}s" + (f" ({', '.join(shown)})" if shown else "")


class StageTimer:
    """Time consecutive stages (A1111 ``Timer``): ``record(name)`` books the time since the previous record.

    Recording the same name again adds to it.  ``summary()`` is the text after "Model loaded in"/"Startup time:".
    ``on_record(name, seconds)`` is told of every record as it happens (``--log-startup`` prints them).
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter,
                 on_record: Callable[[str, float], None] | None = None) -> None:
        self._clock = clock
        self._last = clock()
        self.records: dict[str, float] = {}
        self.on_record = on_record

    def record(self, name: str) -> float:
        """Book the time since the last record (or the start) under ``name``; returns that duration."""
        now = self._clock()
        elapsed = now - self._last
        self._last = now
        self.records[name] = self.records.get(name, 0.0) + elapsed
        if self.on_record is not None:
            self.on_record(name, elapsed)
        return elapsed

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block under ``name`` (whatever happened before it is not counted)."""
        self._last = self._clock()
        try:
            yield
        finally:
            self.record(name)

    @property
    def total(self) -> float:
        """Sum of all recorded stages (A1111 adds every record to its total, shown or not)."""
        return sum(self.records.values())

    def summary(self) -> str:
        return format_load_times(self.total, self.records)

    def message(self, what: str = "Model loaded") -> str:
        """``"Model loaded in 3.2s (…)."``"""
        return f"{what} in {self.summary()}."


# -- port checks --------------------------------------------------------------------------------------------------

_IN_USE = {errno.EADDRINUSE, 10048}  # 10048 = WSAEADDRINUSE
_DENIED = {errno.EACCES, 10013}  # 10013 = WSAEACCES (also Windows' reserved/excluded port ranges)
_NOT_AVAILABLE = {errno.EADDRNOTAVAIL, 10049}


def port_in_use_message(host: str, port: int, suggestion: int | None = None) -> str:
    """One line: ``Port 7860 is already in use on 127.0.0.1; start with --port 7861 (or another free port)``."""
    if suggestion is None and port < 65535:
        suggestion = port + 1
    hint = f"--port {suggestion} (or another free port)" if suggestion else "--port <a free port>"
    return f"Port {port} is already in use on {host}; start with {hint}"


def _try_bind(host: str, port: int) -> OSError | None:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        return exc
    with socket.socket(family, kind, proto) as sock:
        if sys.platform != "win32":  # servers set SO_REUSEADDR; on Windows it would allow stealing a busy port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return exc
    return None


def _free_port_after(host: str, port: int, tries: int = 100) -> int | None:
    for candidate in range(port + 1, min(port + 1 + tries, 65536)):
        if _try_bind(host, candidate) is None:
            return candidate
    return None


def check_port(host: str, port: int) -> str | None:
    """None when the server can listen on ``host:port``; otherwise one line saying why and what to do."""
    error = _try_bind(host, port)
    if error is None:
        return None
    if isinstance(error, socket.gaierror):
        return f"Cannot listen on {host}: the host name cannot be resolved ({error.strerror}); check --server-name"
    code = error.errno if error.errno is not None else getattr(error, "winerror", None)
    if code in _IN_USE:
        return port_in_use_message(host, port, _free_port_after(host, port))
    if code in _DENIED:
        reason = ("ports below 1024 need root/administrator rights" if port < 1024
                  else "the port may be reserved by the system")
        return f"Cannot listen on {host}:{port}: permission denied ({reason}); start with --port 7860 or another port"
    if code in _NOT_AVAILABLE:
        return f"Cannot listen on {host}:{port}: that address does not belong to this machine; check --server-name"
    return f"Cannot listen on {host}:{port}: {error.strerror or error}"
