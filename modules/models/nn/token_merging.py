"""Token merging for Stable Diffusion (ToMe SD, Bolya & Hoffman 2023, "Token Merging for Stable Diffusion").

Before the UNet's self-attention, ``r`` of its ``N`` tokens are merged into similar ones by *bipartite soft
matching*; the attention runs on ``N - r`` tokens and its output is *unmerged* (each merged token receives the
output of the token it was merged into), so the rest of the block sees all ``N`` tokens again.

* Partition (the paper's 2D stride): the feature map is cut into ``sy x sx`` cells (2x2); the first token of every
  full cell is a *destination*, every other token a *source*. A1111 calls tomesd with ``use_rand=False`` ("can
  cause issues with some samplers"), i.e. this fixed choice, which also keeps results reproducible.
* Matching: cosine similarity of every source to every destination; each source's best destination and score;
  the ``r`` sources with the highest scores are merged (averaged) into their destinations, the others kept.
* ``r = int(N * ratio)``, at most the number of sources; ``r == 0`` leaves the layer untouched.

The maths is written from the paper; the similarity metric is the attention input itself, as in the paper's SD
variant (the keys are not available before the attention).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .spatial_attention import HW, AttendFn


def partition(hw: HW, sy: int = 2, sx: int = 2, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """(destination indices, source indices) into the row-major token sequence of an ``hw`` map: one destination
    (the first token) per full ``sy x sx`` cell; tokens of partial cells at the right/bottom edge are sources."""
    h, w = hw
    rows = torch.arange(h, device=device).view(h, 1)
    cols = torch.arange(w, device=device).view(1, w)
    is_dst = (rows % sy == 0) & (cols % sx == 0) & (rows < (h // sy) * sy) & (cols < (w // sx) * sx)
    flat = is_dst.reshape(-1)
    return flat.nonzero().squeeze(1), (~flat).nonzero().squeeze(1)


@dataclass(frozen=True)
class Merge:
    """One bipartite soft matching of a batch of token sequences: :meth:`merge` and its inverse :meth:`unmerge`."""

    dst_idx: Tensor
    """(Nd,) positions of the destination tokens in the sequence."""
    src_idx: Tensor
    """(Ns,) positions of the source tokens."""
    kept: Tensor
    """(B, Ns - r) indices into the sources of those kept as they are."""
    merged: Tensor
    """(B, r) indices into the sources of those merged."""
    target: Tensor
    """(B, r) the destination (index into the destinations) each merged source goes to."""
    tokens: int
    """N, the sequence length before merging."""

    @property
    def r(self) -> int:
        return int(self.merged.shape[1])

    def merge(self, x: Tensor) -> Tensor:
        """(B, N, C) -> (B, N - r, C): the kept sources, then the destinations averaged with what merged into
        them."""
        b, _, c = x.shape
        src, dst = x[:, self.src_idx], x[:, self.dst_idx]
        kept = src.gather(1, self.kept.unsqueeze(-1).expand(b, -1, c))
        moving = src.gather(1, self.merged.unsqueeze(-1).expand(b, -1, c))
        dst = dst.scatter_reduce(1, self.target.unsqueeze(-1).expand(b, -1, c), moving, reduce="mean",
                                 include_self=True)
        return torch.cat([kept, dst], dim=1)

    def unmerge(self, y: Tensor) -> Tensor:
        """(B, N - r, C) -> (B, N, C): destinations and kept sources back to their positions; merged sources take
        their destination's value."""
        b, _, c = y.shape
        n_kept = self.kept.shape[1]
        kept_out, dst_out = y[:, :n_kept], y[:, n_kept:]
        src_out = y.new_empty(b, self.src_idx.shape[0], c)
        src_out.scatter_(1, self.kept.unsqueeze(-1).expand(b, -1, c), kept_out)
        src_out.scatter_(1, self.merged.unsqueeze(-1).expand(b, -1, c),
                         dst_out.gather(1, self.target.unsqueeze(-1).expand(b, -1, c)))
        out = y.new_empty(b, self.tokens, c)
        out[:, self.dst_idx] = dst_out
        out[:, self.src_idx] = src_out
        return out


def bipartite_soft_matching(metric: Tensor, hw: HW, r: int, sy: int = 2, sx: int = 2) -> Merge | None:
    """Match ``r`` source tokens of ``metric`` (B, N, C) to destinations (see the module docstring); None when
    nothing is to be merged (``r <= 0``, or no destination on a map smaller than one cell)."""
    n = metric.shape[1]
    if n != hw[0] * hw[1]:
        raise ValueError(f"token merging: {n} tokens do not form a {hw[0]}x{hw[1]} map")
    dst_idx, src_idx = partition(hw, sy, sx, metric.device)
    r = min(r, int(src_idx.shape[0]))
    if r <= 0 or dst_idx.numel() == 0:
        return None
    with torch.no_grad():
        normed = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        scores = normed[:, src_idx] @ normed[:, dst_idx].transpose(1, 2)
        best, best_dst = scores.max(dim=-1)
        order = best.argsort(dim=-1, descending=True)
        merged, kept = order[:, :r], order[:, r:]
        target = best_dst.gather(1, merged)
    return Merge(dst_idx, src_idx, kept, merged, target, n)


@dataclass(frozen=True)
class TokenMerging:
    """The spatial-attention wrap of ToMe: merge ``int(N * ratio)`` tokens, attend, unmerge."""

    ratio: float
    sy: int = 2
    sx: int = 2

    def __call__(self, attend: AttendFn, x: Tensor, hw: HW) -> Tensor:
        match = bipartite_soft_matching(x, hw, int(x.shape[1] * self.ratio), self.sy, self.sx)
        if match is None:
            return attend(x, hw)
        return match.unmerge(attend(match.merge(x), hw))
