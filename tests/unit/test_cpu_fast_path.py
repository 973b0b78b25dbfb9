"""CPU fast paths (modules/models/nn/cpu_fast.py): same outputs as the plain eager path, packed weights follow every
weight change (LoRA patching, state-dict loads, parameter replacement), autograd and missing oneDNN fall back."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from modules.models.architectures import detect_architecture
from modules.models.nn import cpu_fast
from modules.models.nn.cpu_fast import (
    FastConv2d,
    FastLinear,
    disable_cpu_fast_path,
    enable_cpu_fast_path,
    linear_fast_path_problem,
    should_pack,
)
from modules.models.nn.unet import build_unet
from modules.models.patcher import ModelPatcher

needs_onednn = pytest.mark.skipif(linear_fast_path_problem(torch.float32) != "", reason="no oneDNN linear here")


def rel_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got.float() - ref.float()).abs().max() / ref.float().abs().max())


def fast_layer(dtype: torch.dtype = torch.float32, *, pack: bool = True) -> FastLinear:
    torch.manual_seed(0)
    layer = FastLinear(64, 48).to(dtype)
    layer.fast, layer.pack = True, pack
    return layer


@needs_onednn
@pytest.mark.parametrize("pack", [True, False])
@torch.no_grad()
def test_fast_linear_equals_f_linear_in_float32(pack: bool) -> None:
    layer = fast_layer(pack=pack)
    x = torch.randn(2, 77, 64)
    assert rel_error(layer(x), F.linear(x, layer.weight, layer.bias)) < 1e-5


@pytest.mark.skipif(linear_fast_path_problem(torch.bfloat16) != "", reason="no oneDNN bf16 linear on this CPU")
@torch.no_grad()
def test_fast_linear_equals_f_linear_in_bfloat16() -> None:
    layer = fast_layer(torch.bfloat16)
    x = torch.randn(3, 50, 64).to(torch.bfloat16)
    assert rel_error(layer(x), F.linear(x.float(), layer.weight.float(), layer.bias.float())) < 2e-2


@needs_onednn
@torch.no_grad()
def test_packed_weight_follows_in_place_changes_and_replacement() -> None:
    layer = fast_layer()
    x = torch.randn(5, 64)
    layer(x)
    first = layer.packed_weight()
    assert layer.packed_weight() is first  # cached while the weight is unchanged
    layer.weight.mul_(2.0)  # in place: version bump
    assert rel_error(layer(x), F.linear(x, layer.weight, layer.bias)) < 1e-5
    layer.load_state_dict({"weight": torch.randn(48, 64), "bias": torch.zeros(48)})
    assert rel_error(layer(x), F.linear(x, layer.weight, layer.bias)) < 1e-5
    layer.weight = torch.nn.Parameter(torch.randn(48, 64))  # replaced: new storage
    assert rel_error(layer(x), F.linear(x, layer.weight, layer.bias)) < 1e-5


@needs_onednn
def test_inference_tensor_weights_are_used_unpacked() -> None:
    with torch.inference_mode():  # weights made under inference_mode have no version counter to key a cache on
        layer = fast_layer()
        x = torch.randn(5, 64)
        assert rel_error(layer(x), F.linear(x, layer.weight, layer.bias)) < 1e-5
        layer.weight.mul_(3.0)
        assert rel_error(layer(x), F.linear(x, layer.weight, layer.bias)) < 1e-5
    assert layer._packed is None


@needs_onednn
def test_autograd_takes_the_plain_path() -> None:
    layer = fast_layer()
    x = torch.randn(4, 64, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad is not None and layer.weight.grad is not None


@pytest.fixture(scope="module")
def unets(tiny_checkpoint):
    cache: dict[str, tuple[torch.nn.Module, dict[str, torch.Tensor]]] = {}

    def get(family: str) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
        if family not in cache:
            checkpoint = load_file(str(tiny_checkpoint(family)))
            match = detect_architecture({k: tuple(v.shape) for k, v in checkpoint.items()})
            gen = torch.Generator().manual_seed(3)
            inputs = {"x": torch.randn(2, match.unet.in_channels, 8, 12, generator=gen),
                      "timesteps": torch.tensor([10.0, 731.0]),
                      "context": torch.randn(2, 77, match.unet.context_dim, generator=gen)}
            if match.unet.adm_in_channels:
                inputs["y"] = torch.randn(2, match.unet.adm_in_channels, generator=gen)
            cache[family] = (build_unet(match.unet, checkpoint), inputs)
        return cache[family]

    return get


@needs_onednn
@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
@torch.no_grad()
def test_unet_fast_path_matches_the_plain_path(unets, family: str) -> None:
    unet, inputs = unets(family)
    plain = unet(**inputs)
    report = enable_cpu_fast_path(unet)
    try:
        assert report.linear and report.channels_last and report.packed
        assert unet.input_blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last)
        assert isinstance(unet.input_blocks[0][0], FastConv2d) and unet.input_blocks[0][0].fast
        assert rel_error(unet(**inputs), plain) < 1e-5
    finally:
        disable_cpu_fast_path(unet)
    assert torch.equal(unet(**inputs), plain)


@needs_onednn
@torch.no_grad()
def test_lora_style_weight_patch_reaches_the_fast_path(unets) -> None:
    unet, inputs = unets("sd1")
    key = next(k for k, m in unet.named_modules() if isinstance(m, FastLinear) and k.endswith("attn2.to_k"))
    enable_cpu_fast_path(unet)
    try:
        before = unet(**inputs)
        patcher = ModelPatcher({"model.diffusion_model.": unet})
        patcher.add_weight_patch(f"model.diffusion_model.{key}.weight", lambda w: 0.5 * w, source="lora")
        with patcher:
            patched = unet(**inputs)
            disable_cpu_fast_path(unet)
            plain_patched = unet(**inputs)
            enable_cpu_fast_path(unet)
        after = unet(**inputs)
    finally:
        disable_cpu_fast_path(unet)
    assert rel_error(patched, before) > 1e-4  # the patch changed the output on the fast path ...
    assert rel_error(patched, plain_patched) < 1e-5  # ... exactly as on the plain path
    assert rel_error(after, before) < 1e-6  # and restore() is seen too


def test_missing_onednn_falls_back_with_one_log_line(unets, monkeypatch, caplog) -> None:
    unet, inputs = unets("sd1")
    with torch.no_grad():
        plain = unet(**inputs)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    with caplog.at_level(logging.INFO, logger=cpu_fast.__name__):
        report = enable_cpu_fast_path(unet, name="tiny")
    try:
        assert not report.linear and "not available" in report.reason
        assert [r.message for r in caplog.records] == [
            "tiny: CPU fast linear path off (oneDNN (mkldnn) is not available in this PyTorch build); "
            "using the plain path"]
        assert not any(m.fast for m in unet.modules() if isinstance(m, FastLinear))
        with torch.no_grad():
            assert rel_error(unet(**inputs), plain) < 1e-5
    finally:
        disable_cpu_fast_path(unet)


@needs_onednn
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@torch.no_grad()
def test_fast_conv_is_exact_and_follows_weight_changes(dtype: torch.dtype) -> None:
    if linear_fast_path_problem(dtype):
        pytest.skip(linear_fast_path_problem(dtype))
    torch.manual_seed(0)
    conv = FastConv2d(16, 24, 3, stride=2, padding=1).to(dtype)
    x = torch.randn(2, 16, 9, 11).to(dtype)
    plain = conv(x)
    conv.fast = True
    conv.to(memory_format=torch.channels_last)
    assert torch.equal(conv(x), plain)  # the same oneDNN kernel, the weight reordered once
    conv.weight.mul_(0.5)
    assert torch.allclose(conv(x).float(), F.conv2d(x, conv.weight, conv.bias, 2, 1).float(), atol=1e-2, rtol=1e-2)
    assert conv(torch.randn(1, 16, 5, 5).to(dtype)).shape == (1, 24, 3, 3)  # another input shape: re-packed


@needs_onednn
@torch.no_grad()
def test_vae_decode_fast_path_matches_the_plain_path(tiny_checkpoint) -> None:
    from modules.models.nn.vae import VAE_PREFIX, build_vae

    checkpoint = load_file(str(tiny_checkpoint("sd1")))
    match = detect_architecture({k: tuple(v.shape) for k, v in checkpoint.items()})
    vae = build_vae(match.vae, {k.removeprefix(VAE_PREFIX): v for k, v in checkpoint.items()
                                if k.startswith(VAE_PREFIX)})
    z = torch.randn(1, 4, 8, 12, generator=torch.Generator().manual_seed(2))
    plain = vae.decode(z)
    enable_cpu_fast_path(vae)
    try:
        assert rel_error(vae.decode(z), plain) < 1e-5
    finally:
        disable_cpu_fast_path(vae)


def test_unsupported_dtypes_are_named() -> None:
    assert "float16" in linear_fast_path_problem(torch.float16)


def test_packing_is_skipped_when_the_copies_would_not_fit() -> None:
    layer = FastLinear(1000, 1000)  # 4 MB of weight
    assert should_pack(layer, 16 * 1024**2)
    assert not should_pack(layer, 8 * 1024**2)
