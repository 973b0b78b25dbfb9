"""OFT / BOFT maths: orthogonal fine-tuning rotates the rows of a weight, ``W' = R·W``.

Facts from A1111 ``extensions-builtin/Lora/network_oft.py`` (which follows kohya-ss ``networks/oft.py`` and
LyCORIS ``modules/diag_oft.py`` / ``boft.py``; Qiu et al. 2023 "Controlling Text-to-Image Diffusion by Orthogonal
Finetuning", Liu et al. 2024 "Parameter-Efficient Orthogonal Finetuning via Butterfly Factorization"):

* **kohya OFT / new LyCORIS OFT** (``oft_blocks`` ``[num_blocks, b, b]``, ``alpha``): ``Q = B − Bᵀ`` (skew
  symmetric); when ``alpha`` is given its Frobenius norm is clamped to ``alpha · out_dim`` (COFT constraint,
  ``Q · (min(‖Q‖, c) + 1e-8) / (‖Q‖ + 1e-8)``); Cayley transform ``R = (I + Q)(I − Q)⁻¹``; ``b = out_dim /
  num_blocks``.
* **old LyCORIS OFT** (``oft_diag`` ``[num_blocks, b, b]``): the blocks already are ``R``; ``num_blocks =
  out_dim / b``.
* Block-diagonal application: the weight's output rows are grouped ``(k n)`` into ``k`` blocks of ``n`` rows and
  block ``k`` becomes ``Σₙ R[k, n, m] · W[k, n, …]`` (``Rₖᵀ · Wₖ``; A1111's einsum ``k n m, k n … -> k m …``).
* **BOFT** (``oft_blocks`` of rank 4, ``[m, num_blocks, b, b]``): ``m`` butterfly factors, each Cayley-transformed;
  factor ``i`` permutes the rows ``(c g k) -> (c k g)`` with ``g = 2``, ``k = 2ⁱ · b/2``, multiplies every group of
  ``b`` consecutive rows by its block (``Rᵢ[d] · rows``) and permutes back.
* ``rescale`` (optional, one value per output row) multiplies the rotated weight.
"""

from __future__ import annotations

import torch
from torch import Tensor


def oft_layout(blocks: Tensor, out_dim: int, *, is_r: bool) -> tuple[int, int]:
    """``(num_blocks, block_size)`` of an OFT/BOFT module on a weight with ``out_dim`` rows; ValueError if they do
    not tile the rows."""
    if blocks.dim() == 4:
        num, size = int(blocks.shape[1]), int(blocks.shape[2])
    elif blocks.dim() == 3 and is_r:
        size = int(blocks.shape[1])
        num = out_dim // size if size else 0
    elif blocks.dim() == 3:
        num = int(blocks.shape[0])
        size = out_dim // num if num else 0
    else:
        raise ValueError(f"OFT blocks must have 3 or 4 dimensions, got {tuple(blocks.shape)}")
    if num * size != out_dim or tuple(blocks.shape[-2:]) != (size, size):
        raise ValueError(f"OFT blocks {tuple(blocks.shape)} do not tile {out_dim} output rows")
    if blocks.dim() == 4:
        factors = int(blocks.shape[0])
        if size % 2 or (factors > 1 and out_dim % (size * 2 ** (factors - 1))):
            raise ValueError(f"BOFT blocks {tuple(blocks.shape)} do not fit {out_dim} output rows")
    return num, size


def cayley(blocks: Tensor, constraint: float | None) -> Tensor:
    """Orthogonal blocks ``(I + Q)(I − Q)⁻¹`` from ``Q = B − Bᵀ``, the norm of ``Q`` clamped to ``constraint``."""
    q = blocks - blocks.transpose(-1, -2)
    if constraint:
        norm = torch.norm(q.flatten())
        q = q * ((torch.clamp(norm, max=constraint) + 1e-8) / (norm + 1e-8))
    eye = torch.eye(int(blocks.shape[-1]), dtype=blocks.dtype, device=blocks.device)
    return (eye + q) @ torch.linalg.inv(eye - q)


def rotate_blocks(rotation: Tensor, weight: Tensor) -> Tensor:
    """Block-diagonal OFT on the rows: block ``k`` of ``weight`` becomes ``Rₖᵀ · Wₖ``."""
    num, size = int(rotation.shape[0]), int(rotation.shape[1])
    grouped = weight.reshape(num, size, -1)
    return torch.einsum("knm,knr->kmr", rotation, grouped).reshape(weight.shape)


def _swap(rows: Tensor, first: int, second: int) -> Tensor:
    """Row permutation ``(c a b) -> (c b a)`` for row groups of sizes ``a = first``, ``b = second``."""
    rest = rows.shape[1]
    return rows.reshape(-1, first, second, rest).transpose(1, 2).reshape(-1, rest)


def butterfly(rotations: Tensor, weight: Tensor) -> Tensor:
    """BOFT: apply the ``m`` butterfly factors ``rotations[i]`` (``[num_blocks, b, b]`` each) to the rows in turn."""
    size = int(rotations.shape[-1])
    half = size // 2
    rows = weight.reshape(weight.shape[0], -1)
    for i in range(int(rotations.shape[0])):
        stride = 2**i * half
        rows = _swap(rows, 2, stride)
        rows = torch.einsum("dij,djr->dir", rotations[i], rows.reshape(-1, size, rows.shape[1])).reshape(rows.shape)
        rows = _swap(rows, stride, 2)
    return rows.reshape(weight.shape)


def oft_merge(blocks: Tensor, weight: Tensor, *, is_r: bool, alpha: float | None,
              rescale: Tensor | None = None) -> Tensor:
    """The rotated weight ``R·W`` (times ``rescale``) for an fp32 ``weight``; ValueError when the shapes differ."""
    out_dim = int(weight.shape[0])
    oft_layout(blocks, out_dim, is_r=is_r)
    blocks = blocks.to(device=weight.device, dtype=torch.float32)
    rotation = blocks if is_r else cayley(blocks, (alpha or 0.0) * out_dim)
    merged = butterfly(rotation, weight) if blocks.dim() == 4 else rotate_blocks(rotation, weight)
    if rescale is not None:
        merged = rescale.to(merged).reshape(-1, *[1] * (weight.dim() - 1)) * merged
    return merged
