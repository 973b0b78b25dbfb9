"""FP8 weight storage (A1111 ``fp8_storage``/``cache_fp16_weight``) and the manager's load order when RAM is short.

Reference for the numbers: A1111 stores each Linear/Conv2d with ``module.to(torch.float8_e4m3fn)`` and computes with
the layer cast back to the compute dtype, so the result must equal plain eager layers whose weights and biases were
rounded through fp8 (``w.to(float8_e4m3fn).to(dtype)``), exactly.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from modules.models.fp8_storage import FP8_DTYPE, WeightStorage, compute_dtype, fp8_state, store_fp8
from modules.models.patcher import ModelPatcher, WeightPatch
from modules.models.state_dict_io import CheckpointLoadError
from tests.unit.test_model_manager import FP32, _bad_files, _denoise, _manager, _registry, load, models_dir  # noqa: F401


def _net(dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.SiLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 16),
                         nn.GroupNorm(4, 16)).to(dtype).eval()


def _rounded_reference(net: nn.Module, dtype: torch.dtype) -> nn.Module:
    ref = copy.deepcopy(net)
    with torch.no_grad():
        for layer in ref.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                for param in layer.parameters(recurse=False):
                    param.copy_(param.to(FP8_DTYPE).to(dtype))
    return ref


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fp8_layers_compute_like_fp8_rounded_eager_layers(dtype: torch.dtype) -> None:
    net = _net(dtype)
    ref = _rounded_reference(net, dtype)
    keys = list(net.state_dict())
    state = store_fp8(net, dtype)
    x = torch.randn(2, 4, 6, 6).to(dtype)
    with torch.inference_mode():
        assert torch.equal(net(x), ref(x))
    assert list(net.state_dict()) == keys  # same names: LoRA keys, offloader and state dicts see the same model
    assert net[0].weight.dtype == FP8_DTYPE and net[3].bias.dtype == FP8_DTYPE  # stored in fp8 again after the call
    assert net[4].weight.dtype == dtype  # GroupNorm is not a stored layer (A1111: Linear and Conv2d only)
    assert state.layers == 2 and compute_dtype(net) == dtype and fp8_state(net) is state
    layer_bytes = sum(p.numel() for m in (net[0], net[3]) for p in m.parameters())
    assert state.bytes_before - state.bytes_after == layer_bytes * (dtype.itemsize - 1)
    assert store_fp8(net, dtype) is state  # idempotent


def test_lora_patches_the_fp16_copy_when_cached() -> None:
    delta = torch.full((16, 8 * 6 * 6), 0.013)
    patch = [WeightPatch("3.weight", lambda base: delta, "lora")]
    results = {}
    for keep in (False, True):
        net = _net()
        original = net[3].weight.detach().clone()
        store_fp8(net, torch.float32, keep_fp16=keep)
        stored = net[3].weight.detach().clone()
        patcher = ModelPatcher({"": net})
        patcher.weight_patches["3.weight"] = patch
        with patcher:
            results[keep] = net[3].weight.detach().clone()
        assert torch.equal(net[3].weight.view(torch.uint8), stored.view(torch.uint8))  # restored bit-identical
        base = original.half().float() if keep else stored.float()
        assert torch.equal(results[keep].view(torch.uint8), (base + delta).to(FP8_DTYPE).view(torch.uint8))
    exact = (original + delta)
    errors = {keep: (r.float() - exact).abs().mean().item() for keep, r in results.items()}
    assert errors[True] <= errors[False]


def test_storage_setting_rules() -> None:
    assert not WeightStorage("Disable").fp8_for(True)
    assert WeightStorage("Enable for SDXL").fp8_for(True) and not WeightStorage("Enable for SDXL").fp8_for(False)
    assert WeightStorage("Enable").fp8_for(False)


def test_manager_applies_and_reverts_fp8_per_load(models_dir: Path) -> None:  # noqa: F811
    wanted = {"storage": WeightStorage("Enable")}
    manager = _manager(_registry(models_dir), FP32, loader=load, storage=lambda options: wanted["storage"])
    plain = _denoise(load(manager.resolve("sd1")))
    model = manager.load("sd1")
    state = fp8_state(model.unet)
    assert state is not None and state.bytes_after < state.bytes_before
    fp8 = _denoise(model)
    assert torch.nn.functional.cosine_similarity(fp8.flatten(), plain.flatten(), dim=0) > 0.98  # 3 mantissa bits
    assert not torch.equal(fp8, plain)
    wanted["storage"] = WeightStorage("Enable for SDXL")  # sd1 is not SDXL: read from the file again, unconverted
    again = manager.load("sd1")
    assert again is not model and fp8_state(again.unet) is None and torch.equal(_denoise(again), plain)
    assert fp8_state(manager.load("sdxl").unet) is not None


def test_short_ram_drops_the_old_model_first_and_restores_it_on_failure(models_dir: Path) -> None:  # noqa: F811
    def run(available: int) -> tuple[list[str], Callable[[str], object], Callable[[], object]]:
        events: list[str] = []

        def loader(info, *args, **kwargs):  # type: ignore[no-untyped-def]
            current = manager.current.checkpoint.name if manager.current is not None else None
            events.append(f"{info.name} over {current}")
            return load(info, *args, **kwargs)

        manager = _manager(_registry(models_dir), FP32, loader=loader, available_ram=lambda: available)
        return events, manager.load, lambda: manager

    events, switch, get = run(0)  # nothing fits: A1111 order, the old model goes before the new one is read
    switch("sd1")
    switch("sdxl")
    assert events == ["sd1.safetensors over None", "sdxl.safetensors over None"]
    bad, fragment = _bad_files(models_dir, models_dir / "sd1.safetensors")["wrong shapes"]  # a valid header
    manager = get()
    manager.registry.refresh()  # type: ignore[attr-defined]
    with pytest.raises(CheckpointLoadError, match=fragment):
        switch(bad.name)
    assert events[-2:] == [f"{bad.name} over None", "sdxl.safetensors over None"]  # "restoring previous"
    assert manager.current.checkpoint.name == "sdxl.safetensors"  # type: ignore[attr-defined]
    assert torch.isfinite(_denoise(manager.current)).all()  # type: ignore[attr-defined]
    events, switch, _ = run(1 << 50)  # plenty of RAM: the new model is read first, the old one stays until it works
    switch("sd1")
    switch("sdxl")
    assert events == ["sd1.safetensors over None", "sdxl.safetensors over sd1.safetensors"]


def test_training_through_fp8_layers_feeds_the_compute_dtype_and_gets_input_gradients() -> None:
    """Textual-inversion/hypernetwork training backpropagates through the frozen UNet to the conditioning: with FP8
    storage the inputs go in the compute dtype (``compute_dtype``, not the stored fp8) and gradients reach them."""
    net = _net()
    for param in net.parameters():
        param.requires_grad_(False)
    store_fp8(net, torch.float32)
    x = torch.randn(2, 4, 6, 6, dtype=compute_dtype(net), requires_grad=True)
    net(x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
