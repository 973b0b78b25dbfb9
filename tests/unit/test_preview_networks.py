"""Approx NN and TAESD networks: original key layouts, TAESD against diffusers' AutoencoderTiny on the same random
weights, VAEApprox against a hand-written formula, and the file loader/fallback of `TinyVaes`."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from modules.models.nn.taesd import taesd_decoder, taesd_encoder
from modules.models.nn.vae_approx import VAEApprox
from modules.processing.preview import live_preview
from modules.processing.tiny_vae import TinyVaes, file_name, taesd_decode, taesd_encode

diffusers = pytest.importorskip("diffusers")


def _randomize(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.08)


def _tiny_diffusers() -> torch.nn.Module:
    vae = diffusers.AutoencoderTiny()  # TAESD's published configuration (64 wide, 1/3/3/3 and 3/3/3/1 blocks)
    _randomize(vae, 0)
    return vae.eval()


def _original_layout(vae: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """diffusers `encoder.layers.N.*` = taesd_encoder.pth `N.*`; `decoder.layers.N.*` = taesd_decoder.pth `N+1.*`
    (the original decoder's Clamp is layer 0; diffusers applies it in forward)."""
    enc, dec = {}, {}
    for key, value in vae.state_dict().items():
        part, _, rest = key.partition(".layers.")
        index, _, tail = rest.partition(".")
        if part == "encoder":
            enc[f"{index}.{tail}"] = value
        elif part == "decoder":
            dec[f"{int(index) + 1}.{tail}"] = value
    return enc, dec


def test_taesd_key_layout_matches_original_files() -> None:
    enc, dec = _original_layout(_tiny_diffusers())
    assert set(taesd_encoder().state_dict()) == set(enc)
    assert set(taesd_decoder().state_dict()) == set(dec)
    assert "1.weight" in dec and "3.conv.0.weight" in dec and "3.skip.weight" not in dec
    assert "0.weight" in enc and "2.weight" in enc and "2.bias" not in enc  # stride-2 convs have no bias


def test_taesd_equals_diffusers_autoencoder_tiny() -> None:
    vae = _tiny_diffusers()
    enc_sd, dec_sd = _original_layout(vae)
    enc, dec = taesd_encoder(), taesd_decoder()
    enc.load_state_dict(enc_sd, strict=True)
    dec.load_state_dict(dec_sd, strict=True)
    g = torch.Generator().manual_seed(1)
    pixels = torch.rand(2, 3, 64, 48, generator=g) * 2 - 1
    latents = torch.randn(2, 4, 8, 6, generator=g) * 2
    with torch.no_grad():
        ref_latents = vae.encode(pixels).latents
        ref_images = vae.decode(latents).sample
    ours_latents = taesd_encode(enc, pixels)
    ours_images = taesd_decode(dec, latents)
    assert ours_latents.shape == (2, 4, 8, 6) and ours_images.shape == (2, 3, 64, 48)
    torch.testing.assert_close(ours_latents, ref_latents, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours_images, ref_images, rtol=1e-5, atol=1e-5)


def test_vae_approx_keys_shape_and_formula() -> None:
    net = VAEApprox()
    _randomize(net, 2)
    keys = list(net.state_dict())
    assert keys == [f"conv{i}.{p}" for i in range(1, 9) for p in ("weight", "bias")]
    assert tuple(net.conv1.weight.shape) == (8, 4, 7, 7) and tuple(net.conv8.weight.shape) == (3, 8, 3, 3)
    x = torch.randn(1, 4, 9, 7, generator=torch.Generator().manual_seed(3))
    # reference: repeat each latent cell 2×2, zero-pad 11, eight valid convolutions each followed by max(x, 0.1x)
    ref = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    ref = F.pad(ref, (11, 11, 11, 11))
    for i in range(1, 9):
        conv = getattr(net, f"conv{i}")
        ref = F.conv2d(ref, conv.weight, conv.bias)
        ref = torch.maximum(ref, 0.1 * ref)
    with torch.no_grad():
        out = net(x)
    assert out.shape == (1, 3, 18, 14)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def _place(tmp: Path, sdxl: bool = False) -> TinyVaes:
    vaes = TinyVaes(tmp / "VAE-approx", tmp / "VAE-taesd", {"HF_HUB_OFFLINE": "1"}, safe_unpickle=True)
    for kind, net in (("approx", VAEApprox()), ("taesd_decoder", taesd_decoder()), ("taesd_encoder", taesd_encoder())):
        _randomize(net, 4)
        path = vaes.path(kind, sdxl)  # type: ignore[arg-type]
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), path)
    return vaes


def test_file_names_and_mirror(tmp_path: Path) -> None:
    assert [file_name("approx", False), file_name("approx", True)] == ["model.pt", "vaeapprox-sdxl.pt"]
    assert file_name("taesd_decoder", True) == "taesdxl_decoder.pth"
    vaes = TinyVaes(tmp_path / "a", tmp_path / "t", {"GITHUB_ENDPOINT": "http://mirror.local/gh/"}, safe_unpickle=True)
    assert vaes.url("taesd_encoder", False) == "http://mirror.local/gh/madebyollin/taesd/raw/main/taesd_encoder.pth"
    assert vaes.url("approx", True).endswith("/releases/download/v1.0.0-pre/vaeapprox-sdxl.pt")
    assert vaes.path("taesd_decoder", False) == tmp_path / "t" / "taesd_decoder.pth"


def test_missing_offline_logs_once_and_previews_fall_back(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    vaes = TinyVaes(tmp_path / "VAE-approx", tmp_path / "VAE-taesd", {"HF_HUB_OFFLINE": "1"}, safe_unpickle=True)
    latents = torch.randn(1, 4, 8, 8)
    with caplog.at_level(logging.WARNING, logger="modules.processing.tiny_vae"):
        for _ in range(3):
            image = live_preview(latents, {"show_progress_type": "TAESD"}, networks=vaes)
            assert image.size == (8, 8)  # "Approx cheap"
    lines = [r.getMessage() for r in caplog.records if "taesd_decoder.pth" in r.getMessage()]
    assert len(lines) == 1 and str(tmp_path / "VAE-taesd" / "taesd_decoder.pth") in lines[0]


def test_previews_per_method(tmp_path: Path) -> None:
    vaes = _place(tmp_path)
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    sizes = {m: live_preview(latents, {"show_progress_type": m}, networks=vaes).size
             for m in ("Approx cheap", "Approx NN", "TAESD")}
    assert sizes == {"Approx cheap": (8, 8), "Approx NN": (16, 16), "TAESD": (64, 64)}
    # a file placed by hand is read with the safe unpickler; the SDXL file is a different one (missing here)
    assert vaes.encoder(False) is not None and vaes.approx_nn(True) is None
