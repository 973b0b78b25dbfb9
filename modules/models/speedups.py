"""Token merging and Hypertile installed on a loaded UNet / VAE for the duration of a pass.

Both act on the networks' spatial self-attention through the ``spatial_wrap`` wrap point
(:mod:`modules.models.nn.spatial_attention`); nothing of torch or of the network classes is patched, and the
previous wraps are put back when the block ends, whatever happens.

*Depth* counts the 2x downsamplings between a layer and the network's highest resolution: for the UNet depth 0 is
the latent's size (SD1/SD2 ``input_blocks.1/2``, ``output_blocks.9-11``), the middle block the deepest level; for
the VAE depth 0 is the image's size and the SD VAE's only attention (``mid.attn_1``, at 1/8) has depth 3.

* Token merging (Bolya & Hoffman 2023; A1111 ``apply_token_merging`` calls tomesd with its defaults
  ``max_downsample=1``, ``merge_attn=True``, ``merge_crossattn=False``, ``merge_mlp=False``): the self-attention
  (``attn1``) of depth-0 layers only. SDXL has no attention at depth 0, so ToMe leaves it unchanged (as tomesd).
* Hypertile (A1111 extension settings ``hypertile_max_depth_*``, ``hypertile_max_tile_*``,
  ``hypertile_swap_size_*``): the self-attention of layers of depth ``<= max_depth``, target tile length
  ``max_tile // 8`` tokens (the setting is in image pixels; 8 pixels per latent cell) at every depth, so the
  high-resolution layers are tiled and the deep ones keep their global attention until images get large. With
  both on, Hypertile tiles first and ToMe merges inside each tile.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from torch import nn

from modules.models.nn.blocks import Downsample, Upsample
from modules.models.nn.hypertile import Hypertile
from modules.models.nn.spatial_attention import SpatialWrap, chain
from modules.models.nn.token_merging import TokenMerging
from modules.models.nn.transformer import BasicTransformerBlock, CrossAttention, SpatialTransformer
from modules.models.nn.vae import AttnBlock

LATENT_CELL = 8
"""Image pixels per latent cell of every SD/SDXL VAE: the Hypertile tile settings are in pixels."""


@dataclass(frozen=True)
class TokenMergeConfig:
    """ToMe of one pass: ``ratio`` of the tokens merged (0 = off) in layers of depth ``< max_downsample`` bits
    (tomesd ``max_downsample=1``: depth 0 only)."""

    ratio: float
    max_downsample: int = 1

    @property
    def active(self) -> bool:
        return self.ratio > 0


@dataclass(frozen=True)
class HypertileConfig:
    """Hypertile of one network for one pass: depths ``0..max_depth``, tile size in pixels, candidate count per
    axis, and the seed of the tile choices."""

    max_depth: int
    max_tile: int
    swap_size: int
    seed: int = 0

    def wrap(self) -> Hypertile:
        """The wrap shared by every tiled layer of the pass (one seeded choice sequence)."""
        return Hypertile(max(1, self.max_tile // LATENT_CELL), self.swap_size, random.Random(self.seed))


def unet_self_attention(unet: nn.Module) -> list[tuple[int, CrossAttention]]:
    """Every ``attn1`` of the UNet with its depth, walking ``input_blocks``, ``middle_block``, ``output_blocks``
    (a ``Downsample`` ends a level, an ``Upsample`` ends a decoder level)."""
    found: list[tuple[int, CrossAttention]] = []

    def visit(block: nn.Module, depth: int) -> None:
        for layer in block.children():
            if isinstance(layer, SpatialTransformer):
                found.extend((depth, b.attn1) for b in layer.transformer_blocks
                             if isinstance(b, BasicTransformerBlock))

    depth = 0
    for block in unet.input_blocks:  # type: ignore[union-attr]
        visit(block, depth)
        depth += sum(isinstance(layer, Downsample) for layer in block.children())
    visit(unet.middle_block, depth)  # type: ignore[arg-type]
    for block in unet.output_blocks:  # type: ignore[union-attr]
        visit(block, depth)
        depth -= sum(isinstance(layer, Upsample) for layer in block.children())
    return found


def vae_self_attention(vae: nn.Module) -> list[tuple[int, AttnBlock]]:
    """Every ``AttnBlock`` of the VAE's encoder and decoder with its depth (its level; ``mid`` is the last)."""
    found: list[tuple[int, AttnBlock]] = []
    for part in (getattr(vae, "encoder", None), getattr(vae, "decoder", None)):
        if part is None:
            continue
        levels = getattr(part, "down", None) or getattr(part, "up", None) or []
        for depth, level in enumerate(levels):
            found.extend((depth, attn) for attn in level.attn)
        mid = getattr(part, "mid", None)
        if mid is not None:
            found.append((max(len(levels) - 1, 0), mid.attn_1))
    return found


AttentionLayer = CrossAttention | AttnBlock


@contextmanager
def _wrapped(layers: list[tuple[AttentionLayer, SpatialWrap]]) -> Iterator[None]:
    saved = [(layer, layer.spatial_wrap) for layer, _ in layers]
    try:
        for layer, wrap in layers:
            layer.spatial_wrap = wrap
        yield
    finally:
        for layer, previous in saved:
            layer.spatial_wrap = previous


@contextmanager
def unet_speedups(unet: nn.Module, tome: TokenMergeConfig | None = None,
                  hypertile: HypertileConfig | None = None) -> Iterator[None]:
    """Token merging and/or Hypertile on the UNet's self-attention while the block runs; with neither the UNet is
    untouched (bit-identical results)."""
    tome_wrap = TokenMerging(tome.ratio) if tome is not None and tome.active else None
    tile_wrap = hypertile.wrap() if hypertile is not None else None
    layers: list[tuple[AttentionLayer, SpatialWrap]] = []
    if tome_wrap is not None or tile_wrap is not None:
        for depth, attn in unet_self_attention(unet):
            merging = tome_wrap if tome is not None and depth < tome.max_downsample else None
            tiling = tile_wrap if hypertile is not None and depth <= hypertile.max_depth else None
            if merging is not None and tiling is not None:
                layers.append((attn, chain(tiling, merging)))
            elif merging is not None or tiling is not None:
                layers.append((attn, merging or tiling))  # type: ignore[arg-type]
    with _wrapped(layers):
        yield


@contextmanager
def vae_hypertile(vae: nn.Module, hypertile: HypertileConfig | None) -> Iterator[None]:
    """Hypertile on the VAE's attention blocks of depth ``<= max_depth`` while the block runs (None: untouched)."""
    layers: list[tuple[AttentionLayer, SpatialWrap]] = []
    if hypertile is not None:
        wrap = hypertile.wrap()
        layers = [(attn, wrap) for depth, attn in vae_self_attention(vae) if depth <= hypertile.max_depth]
    with _wrapped(layers):
        yield
