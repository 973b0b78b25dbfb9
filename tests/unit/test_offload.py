"""--medvram / --lowvram policies measured with a DeviceBudget on a tiny UNet (weights-resident bytes on the device).

On this CPU-only machine the "device" is ``cpu``, so moves are no-ops, but every placement goes through the same
accounting a GPU run would: the budget's peak is the largest set of weights that had to be on the device together.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modules.memory.offload import (
    DeviceBudget,
    DeviceBudgetExceeded,
    ModelOffloader,
    OffloadPolicy,
    resolve_offload_policy,
    stream_units,
    tensor_bytes,
)
from modules.models.nn.unet import UNetConfig, UNetModel


def _tiny_unet() -> UNetModel:
    torch.manual_seed(0)
    config = UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=(1, 1),
                        transformer_depth_input=(1, 1), transformer_depth_output=(1, 1, 1, 1),
                        transformer_depth_middle=1, context_dim=32, num_head_channels=16)
    return UNetModel(config).eval()


def _components() -> dict[str, nn.Module]:
    torch.manual_seed(1)
    return {"text_encoder": nn.Linear(32, 32), "unet": _tiny_unet(),
            "vae": nn.Sequential(nn.Conv2d(4, 16, 3, padding=1), nn.Conv2d(16, 3, 3, padding=1))}


def _run(mode: str) -> tuple[torch.Tensor, DeviceBudget, list[str]]:
    parts = _components()
    budget = DeviceBudget()
    offloader = ModelOffloader(parts, OffloadPolicy(mode), "cpu", budget=budget)  # type: ignore[arg-type]
    seen_resident: list[str] = []
    unet = parts["unet"]

    def check_resident(name: str):
        def hook(_module: nn.Module, _args: object) -> None:
            resident_blocks = [k for k in budget.resident if k.startswith("unet/") and k != "unet/shell"]
            if mode == "lowvram":
                assert resident_blocks == [f"unet/{name}"], resident_blocks
            seen_resident.append(name)
        return hook

    for name, block in stream_units(unet):
        block.register_forward_pre_hook(check_resident(name))  # runs after the offloader's own hook
    with torch.no_grad():
        context = parts["text_encoder"](torch.randn(1, 7, 32, generator=torch.Generator().manual_seed(2)))
        x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(3))
        eps = unet(x, torch.tensor([500.0]), context)
        with offloader.use("vae") as vae:
            image = vae(eps)
    offloader.close()
    return image, budget, seen_resident


def test_policies_resolve_like_a1111() -> None:
    assert resolve_offload_policy().mode == "none"
    assert resolve_offload_policy(medvram=True, lowvram=True).mode == "lowvram"
    assert resolve_offload_policy(medvram_sdxl=True, family="sd1").mode == "none"
    assert resolve_offload_policy(medvram_sdxl=True, family="sdxl-refiner").mode == "medvram"


def test_peak_device_bytes_lowvram_below_medvram_below_normal() -> None:
    normal_image, normal, _ = _run("none")
    medvram_image, medvram, _ = _run("medvram")
    lowvram_image, lowvram, order = _run("lowvram")
    parts = _components()
    total = sum(tensor_bytes(m) for m in parts.values())
    assert normal.peak == total
    assert medvram.peak == max(tensor_bytes(m) for m in parts.values()) == tensor_bytes(parts["unet"])
    assert lowvram.peak < medvram.peak < normal.peak
    assert lowvram.peak < tensor_bytes(parts["unet"]) / 2
    # offloading never changes the numbers
    assert torch.equal(normal_image, medvram_image) and torch.equal(normal_image, lowvram_image)
    assert order == [name for name, _ in stream_units(parts["unet"])]


def test_medvram_keeps_one_component_at_a_time() -> None:
    parts = _components()
    budget = DeviceBudget()
    offloader = ModelOffloader(parts, OffloadPolicy("medvram"), "cpu", budget=budget)
    assert budget.resident == {}
    parts["text_encoder"](torch.zeros(1, 32))
    assert list(budget.resident) == ["text_encoder"]
    with offloader.use("vae"):
        assert list(budget.resident) == ["vae"]
    offloader.offload_all()
    assert budget.current == 0
    offloader.close()
    parts["text_encoder"](torch.zeros(1, 32))
    assert budget.current == 0  # hooks removed


def test_a_budget_too_small_for_normal_mode_fits_lowvram() -> None:
    parts = _components()
    limit = tensor_bytes(parts["unet"]) // 2
    with pytest.raises(DeviceBudgetExceeded, match="--lowvram"):
        ModelOffloader(parts, OffloadPolicy("none"), "cpu", budget=DeviceBudget(limit))
    _, budget, _ = _run("lowvram")
    assert budget.peak <= limit
