"""The wrap point of the networks' spatial self-attention layers (UNet ``attn1``, VAE ``AttnBlock``).

A layer with a ``spatial_wrap`` attribute set calls ``spatial_wrap(attend, x, hw)`` instead of attending over
``x`` itself: ``x`` is the layer's token sequence ``(batch, h*w, channels)`` in row-major order over the feature
map of height/width ``hw``, and ``attend(tokens, hw)`` runs the layer's own attention (projections included) on
any token sequence. A wrap may change the tokens before attending and map the result back, which is what token
merging (Bolya & Hoffman 2023) and Hypertile (spatial tiles of the self-attention) do. ``None`` (the default)
leaves the layer's forward exactly as it was, so a disabled speed-up is bit-identical.

Like ``attention_fn``, the attribute lives on the layer instances; :mod:`modules.models.speedups` sets it for the
duration of a pass and puts the previous value back.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

HW = tuple[int, int]
"""(height, width) of the feature map a token sequence covers."""

AttendFn = Callable[[Tensor, HW], Tensor]
"""The layer's attention over ``(batch, tokens, channels)``; ``hw`` describes the tokens' grid when they form one."""

SpatialWrap = Callable[[AttendFn, Tensor, HW], Tensor]
"""``wrap(attend, x, hw) -> out`` with ``out`` of the shape of ``x``."""


def chain(outer: SpatialWrap, inner: SpatialWrap) -> SpatialWrap:
    """One wrap applying ``outer`` around ``inner``: ``outer`` sees the layer's tokens, ``inner`` each token set
    ``outer`` attends over (e.g. Hypertile's tiles, each merged by ToMe)."""

    def wrapped(attend: AttendFn, x: Tensor, hw: HW) -> Tensor:
        return outer(lambda tokens, tile_hw: inner(attend, tokens, tile_hw), x, hw)

    return wrapped
