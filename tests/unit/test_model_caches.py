"""The model-cache settings in the ModelManager, read at each switch (A1111 `sd_checkpoints_limit`,
`sd_checkpoints_keep_in_cpu`, `sd_checkpoint_cache`, `sd_vae_checkpoint_cache`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from modules.models.checkpoints import CheckpointInfo
from modules.models.manager import CacheLimits
from modules.models.sd_model import StableDiffusionModel
from modules.models.vae_files import VaeResolution
from tests.unit.test_model_manager import FP32, _manager, _registry, load, models_dir  # noqa: F401


def _spied_loader(calls: list[str], moves: dict[str, list[str]]) -> Any:
    """A loader that counts disk loads and records where each model is moved (`StableDiffusionModel.to`)."""
    def loader(info: CheckpointInfo, *args: Any, **kwargs: Any) -> StableDiffusionModel:
        calls.append(info.name)
        model = load(info, *args, **kwargs)
        original = model.to
        moved = moves.setdefault(info.name, [])

        def to(device: torch.device | str) -> StableDiffusionModel:
            moved.append(str(device))
            return original(device)

        model.to = to  # type: ignore[method-assign]
        return model

    return loader


def test_checkpoint_cache_and_limit_are_read_at_each_switch(models_dir: Path) -> None:  # noqa: F811
    calls: list[str] = []
    limits = {"value": CacheLimits()}
    manager = _manager(_registry(models_dir), FP32, loader=_spied_loader(calls, {}), limits=lambda: limits["value"])
    manager.load("sd1")
    manager.load("sdxl")
    assert manager.cached == []  # A1111 defaults: one model loaded, no RAM cache
    manager.load("sd1")
    assert calls == ["sd1.safetensors", "sdxl.safetensors", "sd1.safetensors"]
    limits["value"] = CacheLimits(ram=1)  # sd_checkpoint_cache = 1
    manager.load("sdxl")
    manager.load("sd1")
    assert calls[3:] == ["sdxl.safetensors"]  # sd1 came back from the RAM cache
    limits["value"] = CacheLimits(loaded=2)  # sd_checkpoints_limit = 2
    manager.load("sdxl")
    assert [c.name for c in manager.cached] == ["sd1.safetensors"] and calls[4:] == []


def test_only_one_model_on_device_unless_switched_off(models_dir: Path) -> None:  # noqa: F811
    moves: dict[str, list[str]] = {}
    limits = {"value": CacheLimits(loaded=2)}
    manager = _manager(_registry(models_dir), FP32, loader=_spied_loader([], moves), limits=lambda: limits["value"])
    manager.load("sd1")
    manager.load("sdxl")
    assert moves["sd1.safetensors"] == ["cpu"]  # keep_in_cpu (default): the other loaded model goes to RAM
    limits["value"] = CacheLimits(loaded=2, keep_in_cpu=False)
    manager.load("sd1")
    assert moves["sdxl.safetensors"] == []  # stays where it is (on the device)
    assert manager.cached[0].name == "sdxl.safetensors" and manager.cached_on_device() == [manager.cached[0]]


def test_vae_cache_keeps_replaced_vae_files(models_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    state = load_file(models_dir / "sd1.safetensors")
    vae_file = tmp_path / "other-vae.safetensors"
    save_file({k.removeprefix("first_stage_model."): v + 1 for k, v in state.items()
               if k.startswith("first_stage_model.")}, vae_file)
    choice = {"vae": VaeResolution(vae_file, "settings")}
    limits = {"value": CacheLimits()}
    manager = _manager(_registry(models_dir), FP32, loader=load, vae_resolver=lambda info, options: choice["vae"],
                       limits=lambda: limits["value"])
    model = manager.load("sd1")
    from_file = model.vae
    choice["vae"] = VaeResolution(None, "own")
    manager.reload_vae()
    choice["vae"] = VaeResolution(vae_file, "settings")
    manager.reload_vae()
    assert model.vae is not from_file  # no VAE cache (A1111 default 0): read from the file again
    limits["value"] = CacheLimits(vae_ram=1)
    again = model.vae
    choice["vae"] = VaeResolution(None, "own")
    manager.reload_vae()
    choice["vae"] = VaeResolution(vae_file, "settings")
    manager.reload_vae()
    assert model.vae is again and torch.equal(model.vae.decoder.conv_in.weight,
                                              state["first_stage_model.decoder.conv_in.weight"] + 1)
