"""Dtype policy for the A1111 precision flags, the device probe, and the NaN guards (UNet error, VAE fp32 retry)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modules.memory import devices
from modules.memory.precision import (
    NansError,
    PrecisionFlags,
    check_for_nans,
    decode_with_nan_retry,
    resolve_dtype_policy,
)


def test_cuda_defaults_are_fp16_with_autocast() -> None:
    policy = resolve_dtype_policy("cuda")
    assert (policy.unet, policy.text_encoder, policy.vae) == (torch.float16,) * 3
    assert policy.autocast and policy.nan_check and not policy.upcast_sampling
    assert policy.sampling == torch.float16


def test_no_half_and_no_half_vae() -> None:
    no_half = resolve_dtype_policy("cuda", PrecisionFlags(no_half=True))
    assert (no_half.unet, no_half.vae, no_half.autocast) == (torch.float32, torch.float32, False)
    no_half_vae = resolve_dtype_policy("cuda", PrecisionFlags(no_half_vae=True))
    assert (no_half_vae.unet, no_half_vae.vae) == (torch.float16, torch.float32)


def test_precision_modes_and_upcast_sampling() -> None:
    full = resolve_dtype_policy("cuda", PrecisionFlags(precision="full"))
    assert full.unet == torch.float32 and not full.autocast
    half = resolve_dtype_policy("cuda", PrecisionFlags(precision="half"))
    assert half.unet == torch.float16 and not half.autocast
    upcast = resolve_dtype_policy("cuda", PrecisionFlags(upcast_sampling=True))
    assert upcast.upcast_sampling and upcast.unet == torch.float16 and upcast.sampling == torch.float32
    assert not upcast.autocast  # A1111 samples without autocast when the UNet is upcast
    # "no effect with --no-half"
    assert not resolve_dtype_policy("cuda", PrecisionFlags(upcast_sampling=True, no_half=True)).upcast_sampling
    with pytest.raises(ValueError, match="--precision"):
        resolve_dtype_policy("cuda", PrecisionFlags(precision="double"))  # type: ignore[arg-type]


def test_cpu_uses_fp32_or_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_dtype_policy("cpu", PrecisionFlags(cpu_bf16=False)).unet == torch.float32
    bf16 = resolve_dtype_policy("cpu", PrecisionFlags(cpu_bf16=True))
    assert (bf16.unet, bf16.vae, bf16.autocast) == (torch.bfloat16, torch.bfloat16, True)
    assert resolve_dtype_policy("cpu", PrecisionFlags(cpu_bf16=True, no_half=True)).unet == torch.float32
    assert resolve_dtype_policy("cpu", PrecisionFlags(cpu_bf16=True, no_half_vae=True)).vae == torch.float32
    monkeypatch.setenv("SD_WEBUI_CPU_BF16", "1")
    assert resolve_dtype_policy("cpu").unet == torch.bfloat16  # auto-detection, overridden by the environment
    monkeypatch.setenv("SD_WEBUI_CPU_BF16", "0")
    assert resolve_dtype_policy("cpu").unet == torch.float32
    with resolve_dtype_policy("cpu", PrecisionFlags(cpu_bf16=True)).autocast_context():
        assert torch.is_autocast_enabled("cpu")


def test_device_probe_on_this_machine_and_use_cpu() -> None:
    info = devices.probe_devices(use_cpu=["GFPGAN"])
    expected = "cuda" if torch.cuda.is_available() else ("mps" if devices.mps_available() else "cpu")
    assert info.kind == expected
    assert info.device_for("gfpgan") == devices.CPU
    assert devices.probe_devices(use_cpu=["all"]).sd_device == devices.CPU
    with pytest.raises(ValueError, match="--use-cpu"):
        devices.probe_devices(use_cpu=["gpu"])


def test_unet_nans_name_the_flags_that_fix_them() -> None:
    nan = torch.full((1, 4, 8, 8), float("nan"))
    policy = resolve_dtype_policy("cuda")
    with pytest.raises(NansError) as raised:
        check_for_nans(nan, "unet", policy)
    message = str(raised.value)
    for flag in ("--no-half", "--precision full", "--upcast-sampling", "--disable-nan-check"):
        assert flag in message
    already = resolve_dtype_policy("cuda", PrecisionFlags(no_half=True, precision="full"))
    with pytest.raises(NansError) as raised:
        check_for_nans(nan, "unet", already)
    assert "--no-half " not in str(raised.value) and "--upcast-sampling" not in str(raised.value)
    check_for_nans(nan, "unet", resolve_dtype_policy("cuda", PrecisionFlags(disable_nan_check=True)))
    cpu_fp32 = resolve_dtype_policy("cpu", PrecisionFlags(cpu_bf16=False))  # the CPU default: fp32 without flags
    with pytest.raises(NansError) as raised:
        check_for_nans(nan, "unet", cpu_fp32)
    text = str(raised.value)
    assert "--precision full" not in text and "--no-half" not in text and "full precision" in text
    check_for_nans(torch.zeros(2), "unet", policy)


class _OverflowingDecoder(nn.Module):
    """Its output is finite in fp32 but inf - inf = NaN in fp16 (values above 65504), like an fp16 SDXL VAE."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.proj.weight.fill_(300.0)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.proj(z)
        return (h - h) + z.sum()


def test_vae_nans_retry_in_fp32() -> None:
    policy = resolve_dtype_policy("cpu", PrecisionFlags(precision="half"))
    vae = _OverflowingDecoder().to(torch.float16)
    latents = torch.full((1, 2), 300.0)
    result = decode_with_nan_retry(vae, latents, vae, policy)
    assert result.retried_in_fp32 and "32-bit float" in (result.message or "")
    assert vae.proj.weight.dtype == torch.float32
    assert torch.equal(result.images, torch.full((1, 2), 600.0))
    assert policy.with_fp32_vae().vae == torch.float32
    # second decode: already fp32, no retry needed
    assert not decode_with_nan_retry(vae, latents, vae, policy).retried_in_fp32


def test_vae_nans_without_auto_precision_raise() -> None:
    policy = resolve_dtype_policy("cpu", PrecisionFlags(precision="half"))
    vae = _OverflowingDecoder().to(torch.float16)
    with pytest.raises(NansError, match="--no-half-vae"):
        decode_with_nan_retry(vae, torch.full((1, 2), 300.0), vae, policy, auto_vae_precision=False)


def test_vae_nans_retry_in_bfloat16_when_the_setting_says_so() -> None:
    """A1111 1.10 `auto_vae_precision_bfloat16`: the retry converts the VAE to bf16 (fp32's range) instead of fp32,
    and it acts even with `auto_vae_precision` off (it overrides it)."""
    policy = resolve_dtype_policy("cpu", PrecisionFlags(precision="half"))
    vae = _OverflowingDecoder().to(torch.float16)
    latents = torch.full((1, 2), 300.0)
    result = decode_with_nan_retry(vae, latents, vae, policy, auto_vae_precision=False,
                                   auto_vae_precision_bfloat16=True)
    assert "bfloat16" in (result.message or "") and vae.proj.weight.dtype == torch.bfloat16
    assert torch.isfinite(result.images).all()
