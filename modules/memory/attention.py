"""Attention backend registry: the interchangeable kernels behind every attention layer of the owned networks.

Every backend has one signature, ``fn(q, k, v, heads) -> out``, with ``q`` of shape ``(batch, q_tokens, heads * d)``
and ``k``/``v`` of shape ``(batch, kv_tokens, heads * d)``; the result has the shape of ``q``. The softmax scale is
``d ** -0.5`` (Vaswani et al. 2017), as in LDM's ``CrossAttention`` and ``AttnBlock``.

Names follow A1111's ``cross_attention_optimization`` setting values (``sdp``, ``sdp-no-mem``, ``xformers``,
``Doggettx``, ``V1``, ``sub-quadratic``, ``None``) so a user's ``config.json`` keeps working. One deliberate
difference: A1111's "Automatic" ranks xformers (100) and Doggettx (90) above sdp (70); this project's design makes
PyTorch SDPA the default, so sdp has the highest priority and a command-line flag (``--xformers``,
``--opt-split-attention``, ...) makes its backend preferred, as in A1111.

Networks hold the chosen function in an ``attention_fn`` attribute; :func:`set_attention_backend` walks a module
tree and swaps it (no monkeypatching of torch).
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

logger = logging.getLogger(__name__)

AttentionFn = Callable[[Tensor, Tensor, Tensor, int], Tensor]


class _AttentionLayer(Protocol):
    """A network module that calls its attention through a swappable ``attention_fn`` attribute."""

    attention_fn: AttentionFn

AUTOMATIC = "Automatic"
DEFAULT_BACKEND = "sdp"


def _to_heads(t: Tensor, heads: int) -> Tensor:
    """(b, n, h*d) -> (b, h, n, d) as a view."""
    b, n, inner = t.shape
    return t.view(b, n, heads, inner // heads).transpose(1, 2)


def _from_heads(t: Tensor) -> Tensor:
    """(b, h, n, d) -> (b, n, h*d)."""
    b, h, n, d = t.shape
    return t.transpose(1, 2).reshape(b, n, h * d)


def _softmax_attention(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    """Plain softmax(q k^T * scale) v on (..., n, d) tensors. q is scaled before the product (smaller fp16
    intermediates, the overflow SD2.x is known for) and the softmax runs in fp32 for half inputs."""
    sim = torch.matmul(q * scale if scale != 1.0 else q, k.transpose(-1, -2))
    return torch.matmul(sim.softmax(dim=-1, dtype=torch.float32).to(v.dtype), v)


def sdp_attention(q: Tensor, k: Tensor, v: Tensor, heads: int) -> Tensor:
    """PyTorch fused ``scaled_dot_product_attention`` (flash / memory-efficient / math kernel chosen by torch)."""
    out = F.scaled_dot_product_attention(_to_heads(q, heads), _to_heads(k, heads), _to_heads(v, heads))
    return _from_heads(out)


def sdp_no_mem_attention(q: Tensor, k: Tensor, v: Tensor, heads: int) -> Tensor:
    """SDPA restricted to the math and flash kernels (A1111 ``--opt-sdp-no-mem-attention``: deterministic results)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.MATH, SDPBackend.FLASH_ATTENTION]):
        return sdp_attention(q, k, v, heads)


def naive_attention(q: Tensor, k: Tensor, v: Tensor, heads: int) -> Tensor:
    """No optimisation: the whole attention matrix at once (A1111's "None")."""
    d = q.shape[-1] // heads
    return _from_heads(_softmax_attention(_to_heads(q, heads), _to_heads(k, heads), _to_heads(v, heads), d**-0.5))


def xformers_attention(q: Tensor, k: Tensor, v: Tensor, heads: int) -> Tensor:
    """xformers ``memory_efficient_attention`` on (b, n, h, d) tensors (only when the package is importable)."""
    import xformers.ops

    b, nq, inner = q.shape
    d = inner // heads
    out = xformers.ops.memory_efficient_attention(
        q.reshape(b, nq, heads, d).contiguous(),
        k.reshape(b, k.shape[1], heads, d).contiguous(),
        v.reshape(b, v.shape[1], heads, d).contiguous(),
    )
    return out.reshape(b, nq, inner)


def free_memory_bytes(device: torch.device) -> int:
    """Memory an attention call may use on ``device``: free CUDA memory plus torch's reserved-but-unused pool (as
    A1111's ``get_available_vram``), else the host's available RAM (psutil or /proc/meminfo; 4 GiB if unknown)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 1024**3


def split_attention(q: Tensor, k: Tensor, v: Tensor, heads: int, *, slice_size: int | None = None) -> Tensor:
    """Doggettx split attention: slice the queries so the attention matrix fits in free memory.

    The matrix needs ``batch*heads*q_tokens*kv_tokens*element_size`` bytes, times 2.5 (fp32) or 3 (half) for the
    softmax temporaries (A1111 ``split_cross_attention_forward``); the number of slices is the next power of two that
    brings it under the free memory. ``slice_size`` (queries per slice) overrides the estimate.
    """
    qh, kh, vh = _to_heads(q, heads), _to_heads(k, heads), _to_heads(v, heads)
    b, h, nq, d = qh.shape
    if slice_size is None:
        needed = b * h * nq * kh.shape[2] * q.element_size() * (3 if q.element_size() == 2 else 2.5)
        free = free_memory_bytes(q.device)
        steps = 1 if needed <= free else 2 ** math.ceil(math.log2(needed / free))
        if steps > 64:
            raise RuntimeError(
                f"split attention: not enough memory for {b}x{h}x{nq}x{kh.shape[2]} attention "
                f"({needed / 1024**3:.1f} GiB needed, {free / 1024**3:.1f} GiB free); use a smaller image or batch"
            )
        slice_size = max(1, nq // steps)
    out = torch.empty_like(qh)
    for start in range(0, nq, slice_size):
        end = start + slice_size
        out[:, :, start:end] = _softmax_attention(qh[:, :, start:end], kh, vh, d**-0.5)
    return _from_heads(out)


def invokeai_attention(q: Tensor, k: Tensor, v: Tensor, heads: int, *, max_bytes: int | None = None) -> Tensor:
    """InvokeAI's sliced attention (A1111 `split_cross_attention_forward_invokeAI`, `--opt-split-attention-invokeai`).

    The score matrix (batch·heads × q_tokens × kv_tokens) is computed whole when it fits ``max_bytes`` (CUDA: free
    memory / 3.3; elsewhere 32 MiB, A1111's CPU limit); otherwise in a power-of-two number of slices, along
    batch·heads while there are enough of them, else along the query tokens. The result equals plain attention."""
    qh, kh, vh = _to_heads(q, heads), _to_heads(k, heads), _to_heads(v, heads)
    b, h, nq, d = qh.shape
    flat_q, flat_k, flat_v = qh.reshape(b * h, nq, d), kh.reshape(b * h, -1, d), vh.reshape(b * h, -1, d)
    if max_bytes is None:
        max_bytes = int(free_memory_bytes(q.device) / 3.3) if q.device.type == "cuda" else 32 * 1024**2
    size = b * h * nq * flat_k.shape[1] * q.element_size()
    out = torch.empty_like(flat_q)
    if size <= max_bytes:
        out = _softmax_attention(flat_q, flat_k, flat_v, d**-0.5)
    else:
        div = 1 << math.ceil(math.log2(size / max_bytes))
        if div <= b * h:
            step = (b * h) // div
            for start in range(0, b * h, step):
                rows = slice(start, start + step)
                out[rows] = _softmax_attention(flat_q[rows], flat_k[rows], flat_v[rows], d**-0.5)
        else:
            step = max(nq // div, 1)
            for start in range(0, nq, step):
                out[:, start:start + step] = _softmax_attention(flat_q[:, start:start + step], flat_k, flat_v, d**-0.5)
    return _from_heads(out.reshape(b, h, nq, d))


def split_attention_v1(q: Tensor, k: Tensor, v: Tensor, heads: int, *, group_size: int = 2) -> Tensor:
    """The original "v1" split: attention computed for ``group_size`` (batch*head) slices at a time
    (A1111 ``split_cross_attention_forward_v1``), bounding memory by the number of heads processed together."""
    qh, kh, vh = _to_heads(q, heads), _to_heads(k, heads), _to_heads(v, heads)
    b, h, nq, d = qh.shape
    qf, kf, vf = qh.reshape(b * h, nq, d), kh.reshape(b * h, -1, d), vh.reshape(b * h, -1, d)
    out = torch.empty_like(qf)
    for start in range(0, b * h, group_size):
        end = start + group_size
        out[start:end] = _softmax_attention(qf[start:end], kf[start:end], vf[start:end], d**-0.5)
    return _from_heads(out.view(b, h, nq, d))


def sub_quadratic_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    heads: int,
    *,
    q_chunk_size: int = 1024,
    kv_chunk_size: int | None = None,
    kv_chunk_size_min: int | None = None,
    chunk_threshold_bytes: int | None = None,
) -> Tensor:
    """Memory-efficient attention of Rabe & Staats 2021, "Self-attention does not need O(n^2) memory".

    Queries are processed in chunks of ``q_chunk_size``; for each, keys/values are visited in chunks of
    ``kv_chunk_size`` (default ``sqrt(kv_tokens)``, at least ``kv_chunk_size_min``). Each key chunk contributes
    ``exp(s - m_c) v`` and ``sum exp(s - m_c)`` with its own row maximum ``m_c``; partial results are rescaled by
    ``exp(m_c - m)`` to the running maximum ``m`` and summed, and the output is the value sum divided by the weight
    sum (the paper's numerically stable lazy softmax). Memory per step is ``O(q_chunk * kv_chunk)`` instead of
    ``O(n^2)``. If the full attention matrix fits under ``chunk_threshold_bytes`` the keys are not chunked
    (A1111 ``--sub-quad-chunk-threshold``).
    """
    qh, kh, vh = _to_heads(q, heads), _to_heads(k, heads), _to_heads(v, heads)
    b, h, nq, d = qh.shape
    nk = kh.shape[2]
    scale = d**-0.5
    if kv_chunk_size is None:
        kv_chunk_size = int(math.sqrt(nk))
        if kv_chunk_size_min is not None:
            kv_chunk_size = max(kv_chunk_size, kv_chunk_size_min)
    if chunk_threshold_bytes is not None and b * h * nq * nk * q.element_size() <= chunk_threshold_bytes:
        kv_chunk_size = nk
    kv_chunk_size = max(1, min(kv_chunk_size, nk))
    acc_dtype = torch.float32 if q.dtype in (torch.float16, torch.bfloat16) else q.dtype

    out = torch.empty_like(qh)
    for qs in range(0, nq, q_chunk_size):
        q_chunk = qh[:, :, qs : qs + q_chunk_size] * scale
        if kv_chunk_size >= nk:
            out[:, :, qs : qs + q_chunk_size] = _softmax_attention(q_chunk, kh, vh, 1.0)
            continue
        acc_value: Tensor | None = None
        acc_weight = acc_max = acc_value
        for ks in range(0, nk, kv_chunk_size):
            scores = torch.matmul(q_chunk, kh[:, :, ks : ks + kv_chunk_size].transpose(-1, -2)).to(acc_dtype)
            chunk_max = scores.amax(dim=-1, keepdim=True)
            weights = torch.exp(scores - chunk_max)
            value = torch.matmul(weights.to(vh.dtype), vh[:, :, ks : ks + kv_chunk_size]).to(acc_dtype)
            weight = weights.sum(dim=-1, keepdim=True)
            if acc_value is None or acc_weight is None or acc_max is None:
                acc_value, acc_weight, acc_max = value, weight, chunk_max
                continue
            new_max = torch.maximum(acc_max, chunk_max)
            old_scale, new_scale = torch.exp(acc_max - new_max), torch.exp(chunk_max - new_max)
            acc_value = acc_value * old_scale + value * new_scale
            acc_weight = acc_weight * old_scale + weight * new_scale
            acc_max = new_max
        assert acc_value is not None and acc_weight is not None
        out[:, :, qs : qs + q_chunk_size] = (acc_value / acc_weight).to(out.dtype)
    return _from_heads(out)


def make_sub_quadratic_attention(
    q_chunk_size: int = 1024, kv_chunk_size: int | None = None, chunk_threshold_percent: float | None = None
) -> AttentionFn:
    """Sub-quadratic attention configured like A1111's ``--sub-quad-q-chunk-size``, ``--sub-quad-kv-chunk-size``
    and ``--sub-quad-chunk-threshold`` (percent of free memory under which keys are not chunked; default 70 %,
    0 = always chunk). The key chunk is at least as many keys as the threshold allows for one query chunk's
    scores."""

    def attention(q: Tensor, k: Tensor, v: Tensor, heads: int) -> Tensor:
        percent = 70.0 if chunk_threshold_percent is None else chunk_threshold_percent
        threshold = int(free_memory_bytes(q.device) * percent / 100) if percent > 0 else None
        kv_min = None
        if threshold is not None:
            score_bytes_per_key = q.shape[0] * heads * min(q.shape[1], q_chunk_size) * q.element_size()
            kv_min = max(1, threshold // score_bytes_per_key)
        return sub_quadratic_attention(q, k, v, heads, q_chunk_size=q_chunk_size, kv_chunk_size=kv_chunk_size,
                                       kv_chunk_size_min=kv_min, chunk_threshold_bytes=threshold)

    return attention


def _always() -> bool:
    return True


def _xformers_available() -> bool:
    return importlib.util.find_spec("xformers") is not None and torch.cuda.is_available()


@dataclass(frozen=True)
class AttentionBackend:
    """One registry row. ``name`` is the A1111 setting value; ``cmd_flag`` the A1111 flag (options attribute name)
    that makes it preferred; ``priority`` ranks it for "Automatic"."""

    name: str
    label: str
    fn: AttentionFn
    priority: int
    is_available: Callable[[], bool] = _always
    cmd_flags: tuple[str, ...] = ()
    aliases: tuple[str, ...] = field(default_factory=tuple)


_REGISTRY: dict[str, AttentionBackend] = {}


def register_backend(backend: AttentionBackend, *, replace: bool = False) -> None:
    """Add a backend (extensions may add their own, as with A1111's ``on_list_optimizers``)."""
    if backend.name in _REGISTRY and not replace:
        raise ValueError(f"attention backend {backend.name!r} is already registered")
    _REGISTRY[backend.name] = backend


def list_backends() -> list[AttentionBackend]:
    """All registered backends, highest priority first."""
    return sorted(_REGISTRY.values(), key=lambda b: -b.priority)


def available_backends() -> list[AttentionBackend]:
    """Registered backends usable on this machine, highest priority first."""
    return [b for b in list_backends() if b.is_available()]


def get_backend(name: str) -> AttentionBackend:
    """Look up a backend by name or alias (case-insensitive); KeyError names the known ones."""
    wanted = name.strip().lower()
    for backend in _REGISTRY.values():
        if wanted == backend.name.lower() or wanted in (a.lower() for a in backend.aliases):
            return backend
    known = ", ".join(sorted(_REGISTRY))
    raise KeyError(f"unknown attention backend {name!r}; known backends: {known}")


def configure_backends(flags: Mapping[str, object]) -> None:
    """Apply the flags that tune a backend: `--sub-quad-q-chunk-size` (A1111 default 1024),
    `--sub-quad-kv-chunk-size` (default: sqrt of the key count) and `--sub-quad-chunk-threshold` (percent of free
    memory under which keys are not chunked; default 70, 0 = always chunk) for the sub-quadratic backend."""
    def number(value: Any) -> Any:
        return None if value in (None, "") else value

    q_chunk = number(flags.get("sub_quad_q_chunk_size"))
    kv_chunk = number(flags.get("sub_quad_kv_chunk_size"))
    threshold = number(flags.get("sub_quad_chunk_threshold"))
    backend = _REGISTRY["sub-quadratic"]
    register_backend(replace(backend, fn=make_sub_quadratic_attention(
        int(q_chunk) if q_chunk is not None else 1024, int(kv_chunk) if kv_chunk is not None else None,
        float(threshold) if threshold is not None else None)), replace=True)


def preferred_backend_from_flags(flags: Mapping[str, object]) -> str | None:
    """The backend a set of A1111 command-line flags asks for (options attribute names such as ``xformers``,
    ``opt_sdp_attention``), or None. Checked in priority order, like A1111's ``cmd_opt`` preference."""
    for backend in list_backends():
        if any(flags.get(flag) for flag in backend.cmd_flags):
            return backend.name
    return None


def select_backend(setting: str | None = AUTOMATIC, *, preferred: str | None = None) -> AttentionBackend:
    """Choose the backend for a ``cross_attention_optimization`` value.

    A named backend is used when available. "Automatic" takes the ``preferred`` one (from command-line flags) when
    available, else the available backend with the highest priority. An unknown or unavailable choice (e.g.
    ``--xformers`` without xformers installed) logs a warning and falls back to PyTorch SDPA.
    """
    wanted = preferred if (setting is None or setting == AUTOMATIC) else setting
    if wanted is not None:
        try:
            backend = get_backend(wanted)
        except KeyError as exc:
            logger.warning("%s; using %s", exc.args[0], DEFAULT_BACKEND)
            return _REGISTRY[DEFAULT_BACKEND]
        if backend.is_available():
            return backend
        logger.warning("attention backend %r is not available on this machine; using %s", backend.name,
                       DEFAULT_BACKEND)
        return _REGISTRY[DEFAULT_BACKEND]
    return available_backends()[0]


def set_attention_backend(model: nn.Module, backend: AttentionBackend | str) -> AttentionBackend:
    """Point every attention layer in ``model`` (modules with an ``attention_fn`` attribute) at ``backend``."""
    chosen = get_backend(backend) if isinstance(backend, str) else backend
    for module in model.modules():
        if hasattr(module, "attention_fn"):
            cast(_AttentionLayer, module).attention_fn = chosen.fn
    return chosen


for _backend in (
    AttentionBackend("sdp", "PyTorch scaled dot product attention", sdp_attention, 100,
                     cmd_flags=("opt_sdp_attention",), aliases=("pytorch", "sdpa")),
    AttentionBackend("xformers", "xformers memory-efficient attention", xformers_attention, 95, _xformers_available,
                     cmd_flags=("xformers", "force_enable_xformers"), aliases=()),
    AttentionBackend("Doggettx", "split attention (slice queries to fit memory)", split_attention, 90,
                     cmd_flags=("opt_split_attention",), aliases=("split", "split-attention")),
    AttentionBackend("sdp-no-mem", "PyTorch SDPA without the memory-efficient kernel", sdp_no_mem_attention, 80,
                     cmd_flags=("opt_sdp_no_mem_attention",), aliases=()),
    AttentionBackend("sub-quadratic", "sub-quadratic chunked attention (Rabe & Staats 2021)",
                     make_sub_quadratic_attention(), 10, cmd_flags=("opt_sub_quad_attention",),
                     aliases=("sub-quad", "subquad")),
    AttentionBackend("InvokeAI", "InvokeAI sliced attention", invokeai_attention, 10,
                     cmd_flags=("opt_split_attention_invokeai",), aliases=("invokeai",)),
    AttentionBackend("V1", "original v1 split attention", split_attention_v1, 10,
                     cmd_flags=("opt_split_attention_v1",), aliases=("split-v1", "v1")),
    AttentionBackend("None", "no optimisation", naive_attention, 0,
                     cmd_flags=("disable_opt_split_attention",), aliases=("naive",)),
):
    register_backend(_backend)


class AttentionSelector:
    """Which backend the networks use now: the ``cross_attention_optimization`` setting (read on every call, so a
    change in Settings or ``POST /options`` acts on the next job, as A1111's ``onchange`` re-applies it) and the
    command-line preference (``--xformers``, ``--opt-sdp-attention``, ``--opt-split-attention`` …) for "Automatic".

    An unknown or unavailable choice falls back to SDPA and is reported once per choice, not on every job.
    ``upcast`` (A1111 ``upcast_attn``, "Upcast cross attention layer to float32", asked on every attention call)
    runs the attention of half-precision q/k/v in float32 and returns the original dtype.
    """

    def __init__(self, preferred: str | None, setting: Callable[[], str | None],
                 upcast: Callable[[], bool] = lambda: False) -> None:
        self.preferred = preferred
        self._setting = setting
        self._upcast = upcast
        self._reported: set[str] = set()

    def current(self) -> AttentionBackend:
        """The backend for the current setting (A1111 ``sd_hijack.apply_optimizations``), its function wrapped by
        the upcast rule."""
        chosen = self._choose()
        return replace(chosen, fn=upcast_when(chosen.fn, self._upcast))

    def _choose(self) -> AttentionBackend:
        setting = self._setting()
        wanted = self.preferred if (setting is None or setting == AUTOMATIC) else setting
        if wanted is None:
            return available_backends()[0]
        try:
            backend = get_backend(wanted)
        except KeyError as exc:
            self._report(wanted, f"{exc.args[0]}; using {DEFAULT_BACKEND}")
            return _REGISTRY[DEFAULT_BACKEND]
        if not backend.is_available():
            self._report(wanted, f"attention backend {backend.name!r} is not available on this machine; "
                                 f"using {DEFAULT_BACKEND}")
            return _REGISTRY[DEFAULT_BACKEND]
        return backend

    def _report(self, key: str, message: str) -> None:
        if key not in self._reported:
            self._reported.add(key)
            logger.warning(message)

    def apply(self, model: nn.Module) -> AttentionBackend:
        """Point every attention layer of ``model`` at the current backend (with the upcast rule); returns it."""
        backend = self.current()
        set_attention_backend(model, backend)
        return backend


def upcast_when(fn: AttentionFn, upcast: Callable[[], bool]) -> AttentionFn:
    """``fn`` that computes in float32 for fp16/bf16 inputs while ``upcast()`` is true (A1111 ``upcast_attn``)."""
    def attention(q: Tensor, k: Tensor, v: Tensor, heads: int) -> Tensor:
        if q.dtype in (torch.float16, torch.bfloat16) and upcast():
            return fn(q.float(), k.float(), v.float(), heads).to(q.dtype)
        return fn(q, k, v, heads)

    return attention
