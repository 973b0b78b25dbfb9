"""Our KL VAE equals diffusers' ``AutoencoderKL`` on the same tiny single-file weights (fp32, CPU), and tiled
encode/decode stays close to the untiled result.

diffusers reads the checkpoint through its own converter (``convert_ldm_vae_checkpoint``) with a hand-written
local config for the tiny VAE (ch 32, ch_mult (1, 2), one ResBlock per level, 4 latent channels).
"""

from __future__ import annotations

import diffusers
import pytest
import torch
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
from safetensors.torch import load_file

from modules.models.architectures import detect_architecture
from modules.models.nn.vae import AutoencoderKL, LatentDistribution, build_vae
from modules.models.nn.vae_tiling import tiled_decode, tiled_encode

MAX_REL_ERROR = 1e-5

DIFFUSERS_TINY_VAE = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "block_out_channels": (32, 64),
    "down_block_types": ("DownEncoderBlock2D", "DownEncoderBlock2D"),
    "up_block_types": ("UpDecoderBlock2D", "UpDecoderBlock2D"), "layers_per_block": 1, "norm_num_groups": 32,
    "sample_size": 32,
}


def rel_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours - ref).abs().max() / ref.abs().max()).item()


def mean_rel_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours - ref).abs().mean() / ref.abs().mean()).item()


@pytest.fixture(scope="module")
def vaes(tiny_checkpoint) -> tuple[AutoencoderKL, torch.nn.Module]:
    checkpoint = load_file(str(tiny_checkpoint("sd1")))
    match = detect_architecture({k: tuple(v.shape) for k, v in checkpoint.items()})
    ours = build_vae(match.vae, checkpoint)
    ref = diffusers.AutoencoderKL(**DIFFUSERS_TINY_VAE)
    missing, unexpected = ref.load_state_dict(convert_ldm_vae_checkpoint(checkpoint, DIFFUSERS_TINY_VAE), strict=True)
    assert not missing and not unexpected
    return ours, ref.eval()


@torch.no_grad()
def test_encode_matches_diffusers(vaes):
    ours, ref = vaes
    image = torch.rand(2, 3, 24, 40, generator=torch.Generator().manual_seed(3)) * 2 - 1
    expected = ref.encode(image).latent_dist
    got = ours.encode(image)
    assert got.mean.shape == (2, 4, 12, 20)
    assert rel_error(got.mean, expected.mean) <= MAX_REL_ERROR
    assert rel_error(got.logvar, expected.logvar) <= MAX_REL_ERROR


@torch.no_grad()
def test_decode_matches_diffusers(vaes):
    ours, ref = vaes
    latent = torch.randn(2, 4, 12, 10, generator=torch.Generator().manual_seed(4))
    expected = ref.decode(latent).sample
    got = ours.decode(latent)
    assert got.shape == (2, 3, 24, 20)
    assert rel_error(got, expected) <= MAX_REL_ERROR


def test_latent_distribution_sample_uses_mean_std_and_generator():
    moments = torch.cat([torch.full((1, 4, 2, 2), 3.0), torch.full((1, 4, 2, 2), 2 * torch.log(torch.tensor(0.5)))],
                        dim=1)
    dist = LatentDistribution(moments)
    noise = torch.randn(1, 4, 2, 2, generator=torch.Generator().manual_seed(9))
    sample = dist.sample(torch.Generator().manual_seed(9))
    assert torch.allclose(sample, 3.0 + 0.5 * noise)
    assert torch.equal(dist.mode(), torch.full((1, 4, 2, 2), 3.0))
    clamped = LatentDistribution(torch.cat([torch.zeros(1, 4, 1, 1), torch.full((1, 4, 1, 1), 100.0)], dim=1))
    assert clamped.logvar.max().item() == 20.0


@torch.no_grad()
def test_tiled_decode_is_exact_with_one_tile_and_close_with_many(vaes):
    ours, _ = vaes
    gen = torch.Generator().manual_seed(5)
    latent = torch.randn(1, 4, 40, 56, generator=gen)
    full = ours.decode(latent)
    assert torch.allclose(tiled_decode(ours, latent, tile_size=64, overlap=8), full, atol=1e-6)
    tiled = tiled_decode(ours, latent, tile_size=32, overlap=16)
    assert tiled.shape == full.shape
    # GroupNorm statistics are per tile (a random tiny VAE on noise shows it more than a real one on images),
    # so the result is close, not equal; blending across the overlap must beat hard tile edges
    assert mean_rel_error(tiled, full) < 0.1
    assert mean_rel_error(tiled, full) < mean_rel_error(tiled_decode(ours, latent, tile_size=32, overlap=0), full)


@torch.no_grad()
def test_tiled_encode_is_close_to_untiled(vaes):
    ours, _ = vaes
    image = torch.rand(1, 3, 80, 96, generator=torch.Generator().manual_seed(6)) * 2 - 1
    full = ours.encode(image)
    assert torch.allclose(tiled_encode(ours, image, tile_size=128, overlap=16).mean, full.mean, atol=1e-6)
    tiled = tiled_encode(ours, image, tile_size=64, overlap=32)
    assert tiled.mean.shape == full.mean.shape
    assert mean_rel_error(tiled.mean, full.mean) < 0.1
    hard_edges = tiled_encode(ours, image, tile_size=64, overlap=0)
    assert mean_rel_error(tiled.mean, full.mean) < mean_rel_error(hard_edges.mean, full.mean)
    with pytest.raises(ValueError, match="multiples of 2"):
        tiled_encode(ours, image, tile_size=47, overlap=16)


def test_linear_shaped_mid_attention_weights_load(tiny_checkpoint):
    checkpoint = load_file(str(tiny_checkpoint("sd1")))
    match = detect_architecture({k: tuple(v.shape) for k, v in checkpoint.items()})
    reference = build_vae(match.vae, checkpoint)
    flattened = {k: (v[:, :, 0, 0] if ".mid.attn_1." in k and v.dim() == 4 else v) for k, v in checkpoint.items()}
    vae = build_vae(match.vae, flattened)
    for name in ("q", "k", "v", "proj_out"):
        assert torch.equal(getattr(vae.decoder.mid.attn_1, name).weight, getattr(reference.decoder.mid.attn_1,
                                                                                  name).weight)
