"""Philox4x32-10 and the normal numbers NVIDIA CUDA ``torch.randn`` makes from it, on any hardware.

This is the engine of A1111's ``randn_source = "NV"`` setting (A1111 ``modules/rng_philox.py``, added in 1.6): noise
that equals what ``torch.randn(shape, generator=torch.Generator("cuda").manual_seed(seed))`` returns on an NVIDIA
card, computed with NumPy integer arithmetic so a CPU, an AMD card or a Mac gets the same latents.

Sources for every rule here (written from the descriptions, no code copied):

* Philox4x32-10 — Salmon, Moraes, Dror, Shaw, "Parallel Random Numbers: As Easy as 1, 2, 3", SC11 (2011), and the
  Random123 library: a 128-bit counter (four 32-bit words) and a 64-bit key (two words) go through 10 rounds; a
  round multiplies counter words 0 and 2 by ``0xD2511F53`` / ``0xCD9E8D57`` (64-bit products split hi/lo) and
  mixes them as ``(hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)``; between rounds the key is bumped by the Weyl
  constants ``0x9E3779B9`` / ``0xBB67AE85``. Verified against Random123's ``kat_vectors`` in the tests.
* The counter layout of a CUDA ``randn`` — PyTorch ``aten/src/ATen/native/cuda/DistributionTemplates.h``: thread
  ``idx`` calls ``curand_init(seed, subsequence=idx, offset, &state)``; cuRAND puts ``seed`` into the key (low word
  first), the subsequence into counter words 2-3 and ``offset / 4`` into counter words 0-1. Each thread draws
  ``curand_normal4`` (one Philox block → two Box-Muller pairs) and writes component ``ii`` to element
  ``idx + ii * T`` (``T`` = threads in the launch), looping with stride ``4 T`` (the counter steps by one per
  loop). ``T = min(ceil(numel / 256), SMs * maxThreadsPerSM / 256) * 256``; the generator's offset then grows by
  ``((numel - 1) // (4 T) + 1) * 4``.
* Box-Muller — cuRAND ``_curand_box_muller``: ``u = x * 2^-32 + 2^-33``, ``v = y * 2^-32 * 2π + 2^-33 * 2π`` (the
  constants ``2.3283064e-10f`` and ``2.3283064e-10f * 6.2831855f``), ``s = sqrt(-2 ln u)``, returns
  ``(s sin v, s cos v)``.

Numerics: on the device cuRAND uses the fast ``__sincosf``/``logf`` in float32; like A1111's ``rng_philox`` we
evaluate the same formula in float64 and round to float32, which reproduces A1111's "NV" noise exactly and the
CUDA noise to about 1e-6 (see ``docs/rng.md`` for the published CUDA values the tests compare with).

A1111's generator models the launch as "one thread per element" (``threads=None`` here): correct on every card as
long as ``numel`` fits in one wave of threads (e.g. 4×64×64 latents), which is what "NV" means in A1111 infotext.
Passing the card's thread count (``cuda_thread_count``) reproduces the layout a specific GPU uses for bigger
tensors (PyTorch issues #62467, #143086: large CUDA ``randn`` outputs differ between GPU models).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

PHILOX_M4x32 = (0xD2511F53, 0xCD9E8D57)
"""Philox4x32 round multipliers (Random123 ``PHILOX_M4x32_0/1``)."""
PHILOX_W32 = (0x9E3779B9, 0xBB67AE85)
"""Philox 32-bit key-schedule (Weyl) increments (Random123 ``PHILOX_W32_0/1``)."""
PHILOX_ROUNDS = 10

CURAND_2POW32_INV = np.float32(2.3283064e-10)
"""cuRAND ``CURAND_2POW32_INV`` (float32)."""
CURAND_2POW32_INV_2PI = np.float32(2.3283064e-10 * 6.2831855)
"""cuRAND ``CURAND_2POW32_INV_2PI`` (float32; the float and double products round to the same float32)."""

CUDA_BLOCK_SIZE = 256
"""Threads per block of PyTorch's distribution kernels (``block_size_bound``)."""
CURAND4_UNROLL = 4
"""Normals per ``curand_normal4`` call, PyTorch's ``curand4_engine_calls`` / unroll factor."""

_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_UINT64_RANGE = 1 << 64


def seed_to_key(seed: int) -> tuple[int, int]:
    """Split a seed into the two Philox key words ``(low, high)`` the way CUDA's generator sees it.

    ``torch.Generator.manual_seed`` maps a negative seed to ``seed + 2**64`` (PyTorch docs, "Negative inputs are
    remapped to positive values"); values outside ``[-2**63, 2**64)`` are rejected like PyTorch does.
    """
    seed = int(seed)
    if not -(1 << 63) <= seed < _UINT64_RANGE:
        raise ValueError(f"seed {seed} is outside the 64-bit range torch accepts ([-2**63, 2**64 - 1])")
    seed %= _UINT64_RANGE
    return seed & 0xFFFFFFFF, seed >> 32


def philox4x32_10(counter: np.ndarray, key: np.ndarray | Sequence[int], rounds: int = PHILOX_ROUNDS) -> np.ndarray:
    """Apply the Philox4x32 bijection (10 rounds by default) to a batch of counters.

    ``counter`` is a ``(4, N)`` array of uint32 words (word 0 is the least significant), ``key`` either ``(k0, k1)``
    or a ``(2, N)`` array. Returns a new ``(4, N)`` uint32 array; the inputs are not modified. Random123 "philox"
    (Salmon et al. 2011): ``rounds`` rounds with a key bump between consecutive rounds.
    """
    c = np.asarray(counter, dtype=np.uint32)
    if c.ndim != 2 or c.shape[0] != 4:
        raise ValueError(f"philox counter must have shape (4, N), got {c.shape}")
    c0, c1, c2, c3 = (c[i].astype(np.uint64) for i in range(4))
    k = np.asarray(key, dtype=np.uint64)
    if k.shape[0] != 2:
        raise ValueError(f"philox key must have two words, got shape {k.shape}")
    k0, k1 = k[0] & _MASK32, k[1] & _MASK32
    m0, m1 = np.uint64(PHILOX_M4x32[0]), np.uint64(PHILOX_M4x32[1])
    w0, w1 = np.uint64(PHILOX_W32[0]), np.uint64(PHILOX_W32[1])
    for round_index in range(rounds):
        if round_index:
            k0 = (k0 + w0) & _MASK32
            k1 = (k1 + w1) & _MASK32
        p0 = c0 * m0  # < 2**64: exact in uint64
        p1 = c2 * m1
        c0, c1, c2, c3 = (p1 >> _SHIFT32) ^ c1 ^ k0, p1 & _MASK32, (p0 >> _SHIFT32) ^ c3 ^ k1, p0 & _MASK32
    return np.stack([c0, c1, c2, c3]).astype(np.uint32)


def box_muller(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cuRAND's Box-Muller transform of two uint32 words: ``(s·sin v, s·cos v)`` as float32.

    ``u = x·2^-32 + 2^-33`` is never 0 or above 1, so the logarithm is always finite. Evaluated in float64 from the
    float32 constants and rounded once, as A1111's ``rng_philox.box_muller`` does.
    """
    u = np.asarray(x, dtype=np.float64) * np.float64(CURAND_2POW32_INV) + np.float64(CURAND_2POW32_INV / 2)
    v = np.asarray(y, dtype=np.float64) * np.float64(CURAND_2POW32_INV_2PI) + np.float64(CURAND_2POW32_INV_2PI / 2)
    s = np.sqrt(-2.0 * np.log(u))
    return (s * np.sin(v)).astype(np.float32), (s * np.cos(v)).astype(np.float32)


def cuda_thread_count(numel: int, multiprocessors: int, max_threads_per_multiprocessor: int) -> int:
    """Threads PyTorch launches for a distribution kernel over ``numel`` elements (``calc_execution_policy``).

    ``grid = min(ceil(numel / 256), SMs * (maxThreadsPerSM // 256))`` blocks of 256 threads. E.g. an A100 has 108
    SMs × 2048 threads → at most 221184 threads.
    """
    blocks = min(-(-numel // CUDA_BLOCK_SIZE), multiprocessors * (max_threads_per_multiprocessor // CUDA_BLOCK_SIZE))
    return max(blocks, 1) * CUDA_BLOCK_SIZE


def offset_increment(numel: int, threads: int | None = None) -> int:
    """How far one ``randn`` of ``numel`` elements advances the CUDA generator's Philox offset.

    PyTorch: ``((numel - 1) // (T * 4) + 1) * 4`` with ``T`` the launched threads; ``threads=None`` is A1111's
    one-thread-per-element model, where it is always 4 (one counter step per call).
    """
    if threads is None or numel <= 0:
        return CURAND4_UNROLL
    return ((numel - 1) // (threads * CURAND4_UNROLL) + 1) * CURAND4_UNROLL


def cuda_normal_at(
    seed: int, indices: np.ndarray | Sequence[int], offset: int = 0, threads: int | None = None
) -> np.ndarray:
    """The float32 normals CUDA ``randn`` writes at the given flat ``indices`` of its output.

    ``offset`` is the generator's Philox offset before the call (PyTorch counts it in 32-bit draws, always a
    multiple of 4 for ``randn``); ``threads`` the launched thread count (``None``: one thread per element, the A1111
    model). Element ``i`` comes from thread ``i % T``, loop ``i // (4T)`` and ``curand_normal4`` component
    ``(i // T) % 4`` = (sin, cos) of words (0, 1), then (sin, cos) of words (2, 3).
    """
    if offset < 0 or offset % CURAND4_UNROLL:
        raise ValueError(f"philox offset must be a non-negative multiple of 4, got {offset}")
    if threads is not None and threads <= 0:
        raise ValueError(f"CUDA thread count must be positive, got {threads}")
    index = np.asarray(indices, dtype=np.uint64).reshape(-1)
    if threads is None:
        thread, loop, component = index, np.zeros_like(index), np.zeros(index.shape, dtype=np.int64)
    else:
        t = np.uint64(threads)
        thread = index % t
        loop = index // (t * np.uint64(CURAND4_UNROLL))
        component = ((index // t) % np.uint64(CURAND4_UNROLL)).astype(np.int64)

    # 128-bit counter = (offset / 4 + loop) in words 0-1, subsequence (thread index) in words 2-3.
    low = np.uint64(offset // CURAND4_UNROLL) + loop
    counter = np.stack([low & _MASK32, low >> _SHIFT32, thread & _MASK32, thread >> _SHIFT32]).astype(np.uint32)
    key_low, key_high = seed_to_key(seed)
    words = philox4x32_10(counter, (key_low, key_high))

    out = np.empty(index.shape, dtype=np.float32)
    first_pair = component < 2
    if first_pair.any():
        sin_part, cos_part = box_muller(words[0][first_pair], words[1][first_pair])
        out[first_pair] = np.where(component[first_pair] == 0, sin_part, cos_part)
    if (~first_pair).any():
        sin_part, cos_part = box_muller(words[2][~first_pair], words[3][~first_pair])
        out[~first_pair] = np.where(component[~first_pair] == 2, sin_part, cos_part)
    return out


def cuda_randn(seed: int, shape: Sequence[int], offset: int = 0, threads: int | None = None) -> np.ndarray:
    """A whole CUDA ``randn(shape)`` as float32 for a generator at ``offset`` (see ``cuda_normal_at``)."""
    numel = math.prod(int(s) for s in shape)
    if any(int(s) < 0 for s in shape):
        raise ValueError(f"noise shape must not have negative sizes, got {tuple(shape)}")
    return cuda_normal_at(seed, np.arange(numel, dtype=np.uint64), offset, threads).reshape(tuple(shape))


class PhiloxGenerator:
    """A stateful stand-in for ``torch.Generator("cuda").manual_seed(seed)`` producing ``randn`` on the CPU.

    Each ``randn`` call returns what CUDA would return for the next call and advances the offset as PyTorch does
    (A1111 ``rng_philox.Generator`` semantics with ``threads=None``).
    """

    def __init__(self, seed: int, threads: int | None = None) -> None:
        seed_to_key(seed)  # validate early, with a clear message
        self.seed = int(seed)
        self.threads = threads
        self.offset = 0
        """Philox offset in 32-bit draws, as ``torch.cuda`` generators report it."""

    def randn(self, shape: Sequence[int]) -> np.ndarray:
        """Draw float32 standard normals of ``shape`` and advance the generator."""
        out = cuda_randn(self.seed, shape, self.offset, self.threads)
        self.offset += offset_increment(out.size, self.threads)
        return out
