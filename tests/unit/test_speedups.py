"""Token merging (Bolya & Hoffman 2023) and Hypertile maths, and their installation on the UNet / VAE."""

from __future__ import annotations

import copy
import random

import pytest
import torch

from modules.models.nn.hypertile import Hypertile, join_tiles, split_tiles, tile_length_choices
from modules.models.nn.spatial_attention import HW
from modules.models.nn.token_merging import TokenMerging, bipartite_soft_matching, partition
from modules.models.nn.transformer import CrossAttention
from modules.models.nn.unet import UNetModel
from modules.models.nn.vae import AutoencoderKL
from modules.models.speedups import (
    HypertileConfig,
    TokenMergeConfig,
    unet_self_attention,
    unet_speedups,
    vae_hypertile,
    vae_self_attention,
)
from tests.fixtures.tiny_checkpoints import TINY_VAE, tiny_unet_config


def _layer(dim: int = 32, heads: int = 2) -> CrossAttention:
    torch.manual_seed(0)
    return CrossAttention(dim, heads, dim // heads)


# ---------------------------------------------------------------------------------------------- token merging
def test_partition_one_destination_per_full_cell() -> None:
    dst, src = partition((8, 8))
    assert dst.numel() == 16 and src.numel() == 48
    assert sorted(torch.cat([dst, src]).tolist()) == list(range(64))
    dst, src = partition((5, 5))  # partial cells at the edges hold only sources
    assert dst.tolist() == [0, 2, 10, 12]
    assert src.numel() == 21


def test_merge_and_unmerge_shapes() -> None:
    x = torch.randn(2, 64, 16)
    match = bipartite_soft_matching(x, (8, 8), 20)
    assert match is not None and match.r == 20
    merged = match.merge(x)
    assert merged.shape == (2, 44, 16)
    assert match.unmerge(merged).shape == x.shape
    # r is capped at the number of sources
    capped = bipartite_soft_matching(x, (8, 8), 1000)
    assert capped is not None and capped.merge(x).shape == (2, 16, 16)


def test_unmerge_restores_kept_and_destination_tokens() -> None:
    x = torch.randn(1, 64, 8)
    match = bipartite_soft_matching(x, (8, 8), 10)
    assert match is not None
    back = match.unmerge(match.merge(x))
    untouched = torch.ones(64, dtype=torch.bool)
    untouched[match.src_idx[match.merged[0]]] = False
    untouched[match.dst_idx[match.target[0]]] = False  # destinations that took merged tokens became averages
    assert torch.equal(back[0, untouched], x[0, untouched])


def test_ratio_zero_is_the_identity() -> None:
    x = torch.randn(2, 64, 32)
    assert bipartite_soft_matching(x, (8, 8), 0) is None
    layer = _layer()
    plain = layer(x)
    layer.spatial_wrap = TokenMerging(0.0)
    assert torch.equal(layer(x, hw=(8, 8)), plain)


def test_duplicate_tokens_merge_without_changing_the_result() -> None:
    """Every 2x2 cell holds (nearly) one token repeated: merging the copies changes the attention very little."""
    layer = _layer()
    cells = torch.randn(1, 4, 4, 32)
    x = cells.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2).reshape(1, 64, 32)
    x = x + 1e-3 * torch.randn_like(x)
    plain = layer(x)
    layer.spatial_wrap = TokenMerging(0.75)
    merged = layer(x, hw=(8, 8))
    assert (merged - plain).abs().max() < 0.02  # every copy merged: each cell's key keeps its weight


def test_wrong_token_count_is_refused() -> None:
    with pytest.raises(ValueError, match="do not form"):
        bipartite_soft_matching(torch.randn(1, 10, 4), (3, 3), 2)


# -------------------------------------------------------------------------------------------------- hypertile
def test_tile_length_choices() -> None:
    assert tile_length_choices(64, 32, 3) == [32, 64]
    assert tile_length_choices(64, 16, 3) == [16, 32, 64]
    assert tile_length_choices(64, 16, 1) == [16]
    assert tile_length_choices(48, 10, 2) == [12, 16]
    assert tile_length_choices(32, 64, 3) == [32]  # the target covers the axis: one tile
    assert tile_length_choices(37, 8, 3) == [37]  # a prime axis cannot be tiled
    assert tile_length_choices(8, 0, 0) == [1]


def test_split_and_join_tiles_round_trip() -> None:
    x = torch.arange(2 * 24 * 3, dtype=torch.float32).reshape(2, 24, 3)  # 4x6 map
    tiles = split_tiles(x, (4, 6), 2, 3)
    assert tiles.shape == (12, 4, 3)
    # the first tile of the first image: rows 0-1, columns 0-1 of the map
    assert tiles[0, :, 0].tolist() == [x[0, i, 0].item() for i in (0, 1, 6, 7)]
    assert torch.equal(join_tiles(tiles, (4, 6), 2, 3), x)


def test_full_size_tile_is_bit_identical() -> None:
    layer = _layer()
    x = torch.randn(2, 64, 32)
    plain = layer(x)
    layer.spatial_wrap = Hypertile(tile=8, swap_size=3)
    assert torch.equal(layer(x, hw=(8, 8)), plain)


def test_tiled_attention_attends_within_tiles() -> None:
    layer = _layer()
    x = torch.randn(1, 64, 32)
    layer.spatial_wrap = Hypertile(tile=4, swap_size=1)
    tiled = layer(x, hw=(8, 8))
    layer.spatial_wrap = None
    expected = join_tiles(layer(split_tiles(x, (8, 8), 2, 2)), (8, 8), 2, 2)
    assert torch.allclose(tiled, expected, atol=1e-6)
    assert not torch.allclose(tiled, layer(x), atol=1e-3)


def test_tile_choices_repeat_with_the_seed() -> None:
    def draws(seed: int) -> list[tuple[int, int]]:
        tiler = Hypertile(tile=8, swap_size=3, rng=random.Random(seed))
        return [tiler.tiles((64, 64)) for _ in range(20)]

    assert draws(5) == draws(5)
    assert set(draws(5)) <= {(a, b) for a in (8, 4, 2) for b in (8, 4, 2)}
    assert len(set(draws(5))) > 1


# ------------------------------------------------------------------------------------------- on the networks
def _unet() -> UNetModel:
    torch.manual_seed(0)
    return UNetModel(tiny_unet_config("sd1")).eval()


def _unet_out(unet: UNetModel, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return unet(x, torch.tensor([500]), torch.randn(1, 77, 128, generator=torch.Generator().manual_seed(1)))


def test_unet_depths_follow_the_levels() -> None:
    depths = [depth for depth, _ in unet_self_attention(_unet())]
    assert depths == [0, 1, 0, 0]  # input level 0, middle (level 1), output level 0 twice


@pytest.mark.parametrize("tome, tile", [(TokenMergeConfig(0.5), None), (None, HypertileConfig(3, 64, 2)),
                                        (TokenMergeConfig(0.5), HypertileConfig(3, 64, 2))])
def test_unet_speedups_change_the_output_and_are_removed(tome: TokenMergeConfig | None,
                                                        tile: HypertileConfig | None) -> None:
    unet = _unet()
    x = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(2))
    plain = _unet_out(unet, x)
    with unet_speedups(unet, tome, tile):
        fast = _unet_out(unet, x)
    assert fast.shape == plain.shape
    assert not torch.equal(fast, plain)
    assert (fast - plain).abs().mean() < plain.abs().mean()
    assert all(attn.spatial_wrap is None for _, attn in unet_self_attention(unet))
    assert torch.equal(_unet_out(unet, x), plain)


def test_unet_speedups_off_are_bit_identical() -> None:
    unet = _unet()
    x = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(2))
    plain = _unet_out(unet, x)
    with unet_speedups(unet, TokenMergeConfig(0.0), None):
        assert torch.equal(_unet_out(unet, x), plain)
    with unet_speedups(unet, None, HypertileConfig(3, 512, 3)):  # tile covers the 32x32 latent
        assert torch.equal(_unet_out(unet, x), plain)
    with unet_speedups(unet, None, HypertileConfig(-1, 64, 3)):  # no layer that shallow
        assert torch.equal(_unet_out(unet, x), plain)


def test_vae_hypertile() -> None:
    torch.manual_seed(0)
    vae = AutoencoderKL(TINY_VAE).eval()
    assert [depth for depth, _ in vae_self_attention(vae)] == [1, 1]  # encoder.mid and decoder.mid at 1/2
    z = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        plain = vae.decode(z)
        with vae_hypertile(vae, HypertileConfig(3, 64, 2)):
            tiled = vae.decode(z)
        with vae_hypertile(vae, HypertileConfig(0, 64, 2)):  # mid attention is deeper than 0
            assert torch.equal(vae.decode(z), plain)
        with vae_hypertile(vae, None):
            assert torch.equal(vae.decode(z), plain)
        assert torch.equal(vae.decode(z), plain)
    assert not torch.equal(tiled, plain)


def test_wrap_receives_the_map_size() -> None:
    seen: list[HW] = []

    def spy(attend, x, hw):  # type: ignore[no-untyped-def]
        seen.append(hw)
        return attend(x, hw)

    layer = _layer()
    layer.spatial_wrap = spy
    layer(torch.randn(1, 12, 32), hw=(3, 4))
    layer(torch.randn(1, 12, 32), context=torch.randn(1, 5, 32), hw=(3, 4))  # cross-attention is never wrapped
    assert seen == [(3, 4)]


def test_xyz_axes_set_the_settings() -> None:
    from modules.extensions import xyz
    from modules.processing.params import Txt2ImgParams

    axes = xyz.default_axes()
    p = Txt2ImgParams(prompt="a cat")
    for label, text, key, value in (("Token merging ratio", "0.5", "token_merging_ratio", 0.5),
                                    ("[Hypertile] Unet First pass Enabled", "True", "hypertile_enable_unet", True),
                                    ("[Hypertile] VAE Max Tile Size", "64", "hypertile_max_tile_vae", 64)):
        axis = xyz.find_axis(label, axes)
        values = axis.parse(text)
        cell = xyz.apply_cell(p, [(axis, values[0], values)], copy=copy.deepcopy)
        assert cell.override_settings[key] == value
