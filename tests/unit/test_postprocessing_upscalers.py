"""Upscaler registry, A1111 upscale sizes, tiling, and spandrel loading of tiny random-weight ESRGAN / SwinIR files.

Tiny models: ESRGAN (Wang et al. 2018) in the original `RRDBNet` key layout of the released `RRDB_ESRGAN_x4.pth`:
`model.0` first conv; `model.1.sub.<b>.RDB<r>.conv<c>.0` the residual-in-residual dense blocks (growth 32 channels,
the only value spandrel loads); `model.1.sub.<nb>` the trunk conv; per ×2 step a nearest ×2 upsample then
`model.<3k>` conv + LeakyReLU(0.2); then the HR conv and the last conv. Dense block: x_c = lrelu(conv_c(cat(x,
x_1..x_{c-1}))) for c < 5, out = x + 0.2·conv_5(…); RRDB = x + 0.2·RDB3(RDB2(RDB1(x))). spandrel must recognise the
layout by itself, and its output must equal `rrdb_forward`, written here from the paper with functional ops.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from modules.postprocessing import LATENT_UPSCALE_MODES, UnknownUpscalerError, UpscalerModelError, UpscalerRegistry
from modules.postprocessing.spandrel_models import DevicePlacement, load_image_model
from modules.postprocessing.tiling import pil_to_tensor, tile_starts, tiled_apply
from modules.postprocessing.upscalers import scale_from_name, upscale_target

CPU = DevicePlacement(torch.device("cpu"), torch.float32)
GROWTH = 32



def rrdb_state_dict(nf: int = 8, nb: int = 1, scale: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in the original ESRGAN layout (scale 2 or 4)."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}

    def conv(key: str, cin: int, cout: int) -> None:
        sd[f"{key}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) / (cin * 9) ** 0.5
        sd[f"{key}.bias"] = torch.randn(cout, generator=g) * 0.01

    conv("model.0", 3, nf)
    for b in range(nb):
        for r in range(1, 4):
            for c in range(1, 6):
                conv(f"model.1.sub.{b}.RDB{r}.conv{c}.0", nf + (c - 1) * GROWTH, GROWTH if c < 5 else nf)
    conv(f"model.1.sub.{nb}", nf, nf)
    index = 3
    for _ in range(scale.bit_length() - 1):
        conv(f"model.{index}", nf, nf)
        index += 3
    conv(f"model.{index - 1}", nf, nf)
    conv(f"model.{index + 1}", nf, 3)
    return sd


def rrdb_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, nb: int = 1, scale: int = 2) -> torch.Tensor:
    """ESRGAN's forward pass written from the paper with functional ops (the reference for spandrel's module)."""

    def conv(key: str, t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, sd[f"{key}.weight"], sd[f"{key}.bias"], padding=1)

    def lrelu(t: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(t, 0.2)

    fea = conv("model.0", x)
    trunk = fea
    for b in range(nb):
        block_in = trunk
        h = trunk
        for r in range(1, 4):
            feats = [h]
            for c in range(1, 5):
                feats.append(lrelu(conv(f"model.1.sub.{b}.RDB{r}.conv{c}.0", torch.cat(feats, 1))))
            h = h + 0.2 * conv(f"model.1.sub.{b}.RDB{r}.conv5.0", torch.cat(feats, 1))
        trunk = block_in + 0.2 * h
    fea = fea + conv(f"model.1.sub.{nb}", trunk)
    index = 3
    for _ in range(scale.bit_length() - 1):
        fea = lrelu(conv(f"model.{index}", F.interpolate(fea, scale_factor=2, mode="nearest")))
        index += 3
    return conv(f"model.{index + 1}", lrelu(conv(f"model.{index - 1}", fea)))


def swinir_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny SwinIR (×2, pixel-shuffle, embed 12, one stage of depth 1, window 4) in the original key layout,
    built with spandrel's own SwinIR module so the layout is exactly the released one."""
    from spandrel.architectures.SwinIR import SwinIR

    torch.manual_seed(seed)
    net = SwinIR(img_size=16, in_chans=3, embed_dim=12, depths=[1], num_heads=[2], window_size=4, mlp_ratio=2.0,
                 upscale=2, upsampler="pixelshuffle", resi_connection="1conv")
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """models/ESRGAN with a .pth and a .safetensors tiny ESRGAN, models/SwinIR with a tiny SwinIR, plus junk."""
    root = tmp_path_factory.mktemp("models")
    dirs = {name: root / name for name in ("ESRGAN", "RealESRGAN", "SwinIR", "DAT", "ScuNET")}
    for folder in dirs.values():
        folder.mkdir()
    sd = rrdb_state_dict()
    torch.save(sd, dirs["ESRGAN"] / "2x_TinyESRGAN.pth")
    save_file({k: v.contiguous() for k, v in rrdb_state_dict(seed=1).items()}, dirs["ESRGAN"] / "tiny-st.safetensors")
    torch.save(swinir_state_dict(), dirs["SwinIR"] / "tiny_swinir_x2.pth")
    torch.save({"not.a.model": torch.zeros(3)}, dirs["DAT"] / "broken.pth")
    (dirs["ESRGAN"] / "notes.txt").write_text("ignored")
    return dirs


@pytest.fixture()
def registry(model_dirs: dict[str, Path]) -> UpscalerRegistry:
    return UpscalerRegistry(model_dirs, placement=lambda component: CPU)


def test_registry_lists_builtins_first_then_model_files_by_name(registry: UpscalerRegistry) -> None:
    assert registry.names() == ["None", "Lanczos", "Nearest", "2x_TinyESRGAN", "broken", "tiny-st",
                                "tiny_swinir_x2"]
    entry = registry["2x_TinyESRGAN"]
    assert entry.folder == "ESRGAN" and entry.scale == 2 and entry.path is not None
    assert registry["tiny-st"].scale == 4  # nothing in the name: A1111's default 4
    assert entry.api_entry()["model_path"].endswith("2x_TinyESRGAN.pth")
    assert registry["Lanczos"].api_entry() == {"name": "Lanczos", "model_name": None, "model_path": None,
                                               "model_url": None, "scale": 4}
    assert "Latent" in LATENT_UPSCALE_MODES and "Latent" not in registry


def test_unknown_upscaler_names_the_choices(registry: UpscalerRegistry) -> None:
    with pytest.raises(UnknownUpscalerError, match=r"'R-ESRGAN 9x' not found; available: None, Lanczos"):
        registry.upscale(noise_image(16, 16), 2, "R-ESRGAN 9x")
    with pytest.raises(UnknownUpscalerError, match="hires fix only"):
        registry.get_entry("Latent (bicubic)")


@pytest.mark.parametrize(("stem", "scale"), [("4x-UltraSharp", 4), ("RealESRGAN_x2plus", 4), ("foo_x2", 2),
                                             ("2x_bar", 2), ("plain", 4)])
def test_scale_from_name(stem: str, scale: int) -> None:
    assert scale_from_name(stem) == scale


@pytest.mark.parametrize("name", ["Lanczos", "Nearest", "None"])
def test_builtin_upscalers_follow_a1111_size_rule(registry: UpscalerRegistry, name: str) -> None:
    """A1111 `Upscaler.upscale`: target = int(w·s)//8·8 × int(h·s)//8·8, whatever the upscaler."""
    image = noise_image(100, 75)
    assert upscale_target(100, 75, 2) == (200, 144)
    assert registry.upscale(image, 2, name).size == (200, 144)
    assert registry.upscale(image, 2.5, name).size == (248, 184)
    assert registry.upscale(image, 1, name).size == (96, 72)


def test_nearest_replicates_pixels_exactly(registry: UpscalerRegistry) -> None:
    image = noise_image(8, 8)
    out = np.asarray(registry.upscale(image, 2, "Nearest"))
    assert np.array_equal(out, np.asarray(image).repeat(2, 0).repeat(2, 1))


def test_results_are_cached_up_to_the_setting(registry: UpscalerRegistry) -> None:
    calls: list[str] = []
    original = registry._one_pass

    def counting(*args: object) -> Image.Image:
        calls.append("pass")
        return original(*args)  # type: ignore[arg-type]

    registry._one_pass = counting  # type: ignore[method-assign]
    images = [noise_image(16, 16, seed) for seed in range(3)]
    settings = {"upscaling_max_images_in_cache": 2}
    first = registry.upscale(images[0], 2, "Lanczos", settings)
    again = registry.upscale(images[0], 2, "Lanczos", settings)
    assert len(calls) == 1 and np.array_equal(np.asarray(first), np.asarray(again))
    registry.upscale(images[1], 2, "Lanczos", settings)
    registry.upscale(images[2], 2, "Lanczos", settings)  # evicts images[0]
    registry.upscale(images[0], 2, "Lanczos", settings)
    assert len(calls) == 4
    registry.upscale(images[1], 2, "Lanczos", {"upscaling_max_images_in_cache": 0})
    registry.upscale(images[1], 2, "Lanczos", {"upscaling_max_images_in_cache": 0})
    assert len(calls) == 6


def test_tile_starts_cover_the_axis_like_a1111_split_grid() -> None:
    assert tile_starts(100, 192, 8) == [0]
    starts = tile_starts(500, 192, 8)
    assert starts[0] == 0 and starts[-1] == 500 - 192 and len(starts) == 3
    assert all(b - a <= 192 - 8 for a, b in itertools.pairwise(starts))


def test_tiling_is_exact_for_a_network_whose_receptive_field_fits_the_overlap() -> None:
    torch.manual_seed(0)
    weight = torch.randn(3, 3, 1, 1)

    def net(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(F.conv2d(t, weight), scale_factor=2, mode="nearest")

    x = torch.rand(1, 3, 45, 70)
    assert torch.allclose(tiled_apply(net, x, 2, 16, 4), net(x), atol=1e-6)
    assert torch.equal(tiled_apply(net, x, 2, 0, 8), net(x))


def test_esrgan_pth_is_detected_by_spandrel_and_matches_the_paper_forward(model_dirs: dict[str, Path]) -> None:
    descriptor = load_image_model(model_dirs["ESRGAN"] / "2x_TinyESRGAN.pth", CPU)
    assert descriptor.architecture.id == "ESRGAN" and descriptor.scale == 2 and descriptor.purpose == "SR"
    x = torch.rand(1, 3, 12, 10)
    expected = rrdb_forward(rrdb_state_dict(), x).clamp(0, 1)
    assert torch.allclose(descriptor(x), expected, atol=1e-5)


def test_esrgan_safetensors_upscale_runs_the_model_twice_for_4x(registry: UpscalerRegistry) -> None:
    image = noise_image(24, 16)
    assert registry["tiny-st"].scale == 4  # before loading: A1111's default
    descriptor = registry.load_model("tiny-st")
    assert descriptor.scale == 2 and registry["tiny-st"].scale == 2  # after loading: the model's own scale
    registry.refresh()
    assert registry["tiny-st"].scale == 2 and registry.load_model("tiny-st") is descriptor
    out = registry.upscale(image, 4, "tiny-st", {"ESRGAN_tile": 0})
    assert out.size == (96, 64)
    x = pil_to_tensor(image)
    twice = rrdb_forward(rrdb_state_dict(seed=1), rrdb_forward(rrdb_state_dict(seed=1), x).clamp(0, 1)
                         .mul(255).round().div(255)).clamp(0, 1)
    got = pil_to_tensor(out)
    assert (got - twice).abs().max() <= 1.5 / 255


def test_esrgan_tiled_is_close_to_untiled(registry: UpscalerRegistry) -> None:
    image = noise_image(48, 40, seed=3)
    untiled = np.asarray(registry.run_model(image, "2x_TinyESRGAN", (0, 0)), dtype=np.float32)
    tiled = np.asarray(registry.run_model(image, "2x_TinyESRGAN", (24, 8)), dtype=np.float32)
    assert tiled.shape == untiled.shape == (80, 96, 3)
    diff = np.abs(tiled - untiled)
    # pixels farther from a seam than the receptive field are identical; near seams the blend stays close
    assert (diff == 0).mean() > 0.6
    assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 16


def test_swinir_is_discovered_loaded_and_tiled(registry: UpscalerRegistry) -> None:
    descriptor = registry.load_model("tiny_swinir_x2")
    assert descriptor.architecture.id == "SwinIR" and descriptor.scale == 2
    image = noise_image(40, 36, seed=4)
    untiled = np.asarray(registry.run_model(image, "tiny_swinir_x2", (0, 0)), dtype=np.float32)
    tiled = np.asarray(registry.run_model(image, "tiny_swinir_x2", (24, 8)), dtype=np.float32)
    assert tiled.shape == untiled.shape == (72, 80, 3)
    diff = np.abs(tiled - untiled)
    assert (diff == 0).mean() > 0.6 and diff.mean() < 1.0 and diff.max() <= 16
    assert registry.upscale(image, 2, "tiny_swinir_x2").size == (80, 72)


def test_files_that_are_not_upscalers_are_refused_with_the_file_name(registry: UpscalerRegistry,
                                                                     model_dirs: dict[str, Path]) -> None:
    with pytest.raises(UpscalerModelError, match=r"broken\.pth: spandrel does not recognise"):
        registry.upscale(noise_image(16, 16), 2, "broken")
    with pytest.raises(UpscalerModelError, match=r"tiny_swinir_x2\.pth: SwinIR is a SR model; expected one of FaceSR"):
        load_image_model(model_dirs["SwinIR"] / "tiny_swinir_x2.pth", CPU, purposes=("FaceSR",))


def test_refresh_picks_up_new_files_and_forgets_removed_ones(model_dirs: dict[str, Path],
                                                             tmp_path: Path) -> None:
    dirs = dict(model_dirs, ScuNET=tmp_path)
    registry = UpscalerRegistry(dirs, placement=lambda component: CPU)
    assert "late" not in registry
    torch.save(rrdb_state_dict(), tmp_path / "late.pth")
    registry.refresh()
    assert registry["late"].folder == "ScuNET"
    (tmp_path / "late.pth").unlink()
    registry.refresh()
    assert "late" not in registry


def test_bf16_placement_is_used_when_the_architecture_supports_it(model_dirs: dict[str, Path]) -> None:
    """Device/dtype come from the placement (modules.memory policy); ESRGAN declares bf16 support in spandrel."""
    bf16 = DevicePlacement(torch.device("cpu"), torch.bfloat16)
    registry = UpscalerRegistry(model_dirs, placement=lambda component: bf16)
    assert registry.load_model("2x_TinyESRGAN").dtype == torch.bfloat16
    image = noise_image(16, 12, seed=7)
    low = np.asarray(registry.run_model(image, "2x_TinyESRGAN", (0, 0)), dtype=np.float32)
    full = np.asarray(UpscalerRegistry(model_dirs, placement=lambda c: CPU).run_model(image, "2x_TinyESRGAN",
                                                                                        (0, 0)), dtype=np.float32)
    assert np.abs(low - full).mean() < 4.0


def test_use_cpu_flag_puts_upscalers_on_the_cpu() -> None:
    from types import SimpleNamespace

    from modules.postprocessing.spandrel_models import placement_for

    flags = SimpleNamespace(device_id=None, use_cpu=["esrgan"], no_half=True, precision="full")
    placement = placement_for("esrgan", flags)
    assert placement.device == torch.device("cpu") and placement.dtype in (torch.float32, torch.bfloat16)
