"""Hypertile: the self-attention of high-resolution layers split into spatial tiles (A1111's built-in Hypertile
extension, after tfernd's "HyperTile: Tiled Self-Attention").

Self-attention costs O((h·w)^2); attending within ``nh x nw`` tiles costs ``1 / (nh·nw)`` of it. For each layer
call the tile *length* along an axis of length ``L`` is one of the divisors of ``L`` that are at least the target
tile length (so tiles cover the map exactly); the ``swap_size`` smallest such divisors are the candidates and one
is picked at random per call, so tile borders move between steps and leave no seams. A target at least as long as
the axis leaves one tile (the layer attends globally, exactly as without Hypertile).

Choices come from a ``random.Random`` seeded by the caller (A1111 seeds Hypertile with the job's first seed), so
a seed reproduces its image.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from torch import Tensor

from .spatial_attention import HW, AttendFn


def tile_length_choices(length: int, target: int, swap_size: int) -> list[int]:
    """The ``swap_size`` (at least 1) smallest divisors of ``length`` that are ``>= min(target, length)``."""
    target = max(1, min(target, length))
    divisors = [d for d in range(target, length + 1) if length % d == 0]
    return divisors[:max(1, swap_size)]


def split_tiles(x: Tensor, hw: HW, nh: int, nw: int) -> Tensor:
    """(B, h*w, C) -> (B*nh*nw, (h/nh)*(w/nw), C): each tile's tokens in row-major order, tiles batch-major."""
    b, _, c = x.shape
    h, w = hw
    th, tw = h // nh, w // nw
    tiles = x.reshape(b, nh, th, nw, tw, c).permute(0, 1, 3, 2, 4, 5)
    return tiles.reshape(b * nh * nw, th * tw, c)


def join_tiles(tiles: Tensor, hw: HW, nh: int, nw: int) -> Tensor:
    """Inverse of :func:`split_tiles`."""
    h, w = hw
    th, tw = h // nh, w // nw
    c = tiles.shape[-1]
    b = tiles.shape[0] // (nh * nw)
    x = tiles.reshape(b, nh, nw, th, tw, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h * w, c)


@dataclass
class Hypertile:
    """The spatial-attention wrap of Hypertile: ``tile`` is the target tile length in tokens, ``swap_size`` the
    number of candidate tile lengths per axis, ``rng`` the seeded source of the per-call choice."""

    tile: int
    swap_size: int
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def tiles(self, hw: HW) -> tuple[int, int]:
        """(nh, nw) for one call on an ``hw`` map."""
        h, w = hw
        th = self.rng.choice(tile_length_choices(h, self.tile, self.swap_size))
        tw = self.rng.choice(tile_length_choices(w, self.tile, self.swap_size))
        return h // th, w // tw

    def __call__(self, attend: AttendFn, x: Tensor, hw: HW) -> Tensor:
        nh, nw = self.tiles(hw)
        if nh == 1 and nw == 1:
            return attend(x, hw)
        out = attend(split_tiles(x, hw, nh, nw), (hw[0] // nh, hw[1] // nw))
        return join_tiles(out, hw, nh, nw)
