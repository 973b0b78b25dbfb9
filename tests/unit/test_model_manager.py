"""Loader and ModelManager on tiny checkpoints: families, sidecars, VAEs, bad files, switching, cache, offload, hashes.

The central promise: a checkpoint that fails to load (garbage, truncated, wrong shapes, unknown architecture, unsafe
pickle) raises an error naming the file, and the model that was loaded before keeps working.
"""

from __future__ import annotations

import gc
import hashlib
import os
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from modules.memory.attention import AttentionSelector
from modules.memory.offload import DeviceBudget, DeviceBudgetExceeded, ModelOffloader, OffloadPolicy, tensor_bytes
from modules.memory.precision import PrecisionFlags, resolve_dtype_policy
from modules.models.architectures import ArchitectureMatch
from modules.models.checkpoints import CheckpointInfo, CheckpointRegistry
from modules.models.hashes import BackgroundHasher, HashCache
from modules.models.loader import Builders, DevicePolicy, load_checkpoint
from modules.models.manager import ModelManager, OffloadFlags, UnknownCheckpointError
from modules.models.sd_model import StableDiffusionModel
from modules.models.state_dict_io import CheckpointLoadError
from modules.models.vae_files import VaeResolution


class StandInTextEncoder(nn.Module):
    """Token-embedding lookup built from the checkpoint's own text-encoder weights (a stand-in for the real encoders,
    so these tests exercise files and memory, not text encoding)."""

    def __init__(self, embeddings: list[Tensor]) -> None:
        super().__init__()
        self.tables = nn.ParameterList([nn.Parameter(e, requires_grad=False) for e in embeddings])

    def forward(self, tokens: Tensor) -> Tensor:
        return torch.cat([nn.functional.embedding(tokens, table) for table in self.tables], dim=-1)


def stand_in_text_encoders(match: ArchitectureMatch, state: Mapping[str, Tensor], dtype: torch.dtype,
                           device: torch.device) -> nn.Module | None:
    tables = [value for key, value in sorted(state.items())
              if key.endswith(("token_embedding.weight", "model.token_embedding.weight"))]
    if not match.text_encoders:
        return None
    assert len(tables) == len(match.text_encoders), [t.prefix for t in match.text_encoders]
    return StandInTextEncoder([t.to(device=device, dtype=dtype) for t in tables])


BUILDERS = Builders(text_encoders=stand_in_text_encoders)
FP32 = DevicePolicy(dtypes=resolve_dtype_policy("cpu", PrecisionFlags(cpu_bf16=False)))


def _manager(registry: CheckpointRegistry, policy: DevicePolicy, **kwargs: object) -> ModelManager:
    """A ModelManager with the required collaborators defaulted for unit tests (the app passes real ones)."""
    defaults: dict[str, object] = {
        "hasher": BackgroundHasher(HashCache(None, enabled=False)),
        "vae_resolver": lambda info, options: VaeResolution(None, "the checkpoint's own VAE (Automatic)"),
        "attention": AttentionSelector(None, lambda: "Automatic"),
        "offload": OffloadFlags(),
    }
    return ModelManager(registry, policy, **{**defaults, **kwargs})  # type: ignore[arg-type]


def load(info: CheckpointInfo, policy: DevicePolicy = FP32, **kwargs) -> StableDiffusionModel:
    return load_checkpoint(info, policy, builders=BUILDERS, **kwargs)


def _denoise(model: StableDiffusionModel, seed: int = 0) -> Tensor:
    """One UNet call with the stand-in text encoder, like a sampling step."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, model.architecture.unet.in_channels, 8, 8, generator=gen)
    context = model.text_encoders(torch.tensor([[49406, 320, 49407]]))
    y = None
    if model.is_sdxl:
        y = torch.randn(1, model.architecture.unet.adm_in_channels, generator=gen)
    with torch.no_grad():
        return model.unet(x, torch.tensor([500.0]), context, y)


@pytest.fixture
def models_dir(tmp_path: Path, tiny_checkpoint: Callable[..., Path]) -> Path:
    sd = tmp_path / "models" / "Stable-diffusion"
    sd.mkdir(parents=True)
    for family in ("sd1", "sdxl"):
        (sd / f"{family}.safetensors").symlink_to(tiny_checkpoint(family))
    return sd


def _registry(models_dir: Path, **kwargs) -> CheckpointRegistry:
    return CheckpointRegistry(models_dir, **kwargs)


@pytest.mark.parametrize("family", ["sd1", "sd1-inpaint", "ip2p", "sd2", "sd2-v", "sdxl", "sdxl-refiner"])
def test_every_family_loads_with_timings(family: str, tiny_checkpoint: Callable[..., Path]) -> None:
    model = load(CheckpointInfo.from_path(tiny_checkpoint(family)))
    assert model.family == family
    assert model.prediction_type == ("v" if family == "sd2-v" else "eps")
    assert len(model.components()) == 3
    summary = model.timings.summary()
    assert summary.startswith("Model loaded in ") and summary.endswith(".")
    assert "load weights from disk" in model.timings.stages


def test_ckpt_and_safetensors_give_identical_networks(tiny_checkpoint: Callable[..., Path]) -> None:
    from_safetensors = load(CheckpointInfo.from_path(tiny_checkpoint("sd1")))
    from_ckpt = load(CheckpointInfo.from_path(tiny_checkpoint("sd1", fmt="ckpt")))
    for a, b in ((from_safetensors.unet, from_ckpt.unet), (from_safetensors.vae, from_ckpt.vae)):
        for (key, left), right in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(left, right), key


def test_dtype_policy_is_applied(tiny_checkpoint: Callable[..., Path]) -> None:
    dtypes = resolve_dtype_policy("cpu", PrecisionFlags(cpu_bf16=True, no_half_vae=True))
    model = load(CheckpointInfo.from_path(tiny_checkpoint("sd1")), DevicePolicy(dtypes=dtypes))
    assert next(model.unet.parameters()).dtype == torch.bfloat16
    assert next(model.vae.parameters()).dtype == torch.float32
    assert next(model.text_encoder_module.parameters()).dtype == torch.bfloat16


def test_sidecar_yaml_sets_v_prediction(tmp_path: Path, tiny_checkpoint: Callable[..., Path]) -> None:
    path = tmp_path / "my-sd2.safetensors"
    path.symlink_to(tiny_checkpoint("sd2"))
    assert load(CheckpointInfo.from_path(path)).family == "sd2"  # the UNet probe says eps
    (tmp_path / "my-sd2.yaml").write_text("model:\n  params:\n    parameterization: \"v\"\n")
    model = load(CheckpointInfo.from_path(path))
    assert (model.family, model.prediction_type) == ("sd2-v", "v")


def test_external_vae_and_files_without_a_vae(tmp_path: Path, tiny_checkpoint: Callable[..., Path]) -> None:
    state = load_file(tiny_checkpoint("sd1"))
    vae_state = {k.removeprefix("first_stage_model."): v * 0.5 for k, v in state.items()
                 if k.startswith("first_stage_model.")}
    vae_path = tmp_path / "half.vae.safetensors"
    save_file(vae_state, vae_path)
    no_vae = tmp_path / "no-vae.safetensors"
    save_file({k: v for k, v in state.items() if not k.startswith("first_stage_model.")}, no_vae)
    info = CheckpointInfo.from_path(no_vae)
    with pytest.raises(CheckpointLoadError, match="contains no VAE"):
        load(info)
    model = load(info, vae=VaeResolution(vae_path, "test"))
    assert model.vae_name == "half.vae.safetensors"
    assert torch.equal(model.vae.decoder.conv_in.weight, vae_state["decoder.conv_in.weight"])


def _bad_files(folder: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """name → (file, a fragment its error must contain)."""
    garbage = folder / "garbage.safetensors"
    garbage.write_bytes(os.urandom(50_000))
    truncated = folder / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    state = load_file(good)
    state["model.diffusion_model.out.2.weight"] = torch.zeros(4, 32, 3, 3)  # valid file, wrong shape for sd1
    wrong_shapes = folder / "wrong-shapes.safetensors"
    save_file(state, wrong_shapes)
    unknown = folder / "unknown.safetensors"
    save_file({"encoder.layer.0.weight": torch.zeros(2, 2)}, unknown)
    unsafe = folder / "unsafe.ckpt"
    marker = folder / "pwned.txt"

    class Payload:
        def __reduce__(self):  # type: ignore[override]
            return (open, (str(marker), "w"))

    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": Payload()}, unsafe)
    return {"garbage": (garbage, "not a valid safetensors file"), "truncated": (truncated, "truncated"),
            "wrong shapes": (wrong_shapes, "shape mismatch"), "unknown": (unknown, "unknown model architecture"),
            "unsafe": (unsafe, "forbidden")}


def test_failed_switch_keeps_the_previous_model_working(models_dir: Path) -> None:
    manager = _manager(_registry(models_dir), FP32, loader=load)
    model = manager.load("sd1.safetensors")
    before = _denoise(model)
    for name, (path, fragment) in _bad_files(models_dir, models_dir / "sd1.safetensors").items():
        manager.registry.refresh()
        with pytest.raises(CheckpointLoadError) as raised:
            manager.load(path.name)
        assert str(path) in str(raised.value) and fragment in str(raised.value), name
        assert manager.current is model and manager.on_device
    assert torch.equal(_denoise(manager.current), before)
    assert not (models_dir / "pwned.txt").exists()
    with pytest.raises(UnknownCheckpointError, match="nope"):
        manager.load("nope [0000000000]")
    assert manager.current is model


def test_switching_with_a_ram_cache(models_dir: Path) -> None:
    calls: list[str] = []

    def counting_loader(info: CheckpointInfo, *args, **kwargs):
        calls.append(info.name)
        return load(info, *args, **kwargs)

    manager = _manager(_registry(models_dir), FP32, loader=counting_loader, cache_size=1)
    sd1 = manager.load("sd1")
    assert manager.load("sd1.safetensors") is sd1  # already current: nothing happens
    sdxl = manager.load("sdxl")
    assert manager.current is sdxl and manager.cached == [sd1.checkpoint]
    assert sd1.offloader is None  # cached models carry no hooks
    assert manager.load("sd1") is sd1  # from the RAM cache, not from disk
    assert calls == ["sd1.safetensors", "sdxl.safetensors"]
    assert manager.cached == [sdxl.checkpoint]
    assert torch.isfinite(_denoise(sd1)).all()

    no_cache = _manager(_registry(models_dir), FP32, loader=counting_loader, cache_size=0)
    no_cache.load("sd1")
    no_cache.load("sdxl")
    assert no_cache.cached == []


def test_unload_reload_and_device_budget(models_dir: Path) -> None:
    budget = DeviceBudget()
    manager = _manager(_registry(models_dir), FP32, loader=load, budget=budget)
    model = manager.load("sd1")
    assert budget.current == model.weight_bytes()
    manager.unload()
    assert not manager.on_device and budget.current == 0
    assert manager.reload() is model and manager.on_device
    assert budget.current == model.weight_bytes()
    manager.load("sdxl")
    assert budget.current == manager.current.weight_bytes()  # the old model's bytes were released
    manager.free()
    assert manager.current is None and budget.current == 0


def test_medvram_sdxl_applies_only_to_sdxl(models_dir: Path) -> None:
    manager = _manager(_registry(models_dir), FP32, loader=load, offload=OffloadFlags(medvram_sdxl=True))
    assert manager.load("sd1").offloader.policy.mode == "none"
    sdxl = manager.load("sdxl")
    assert sdxl.offloader.policy.mode == "medvram"
    _denoise(sdxl)
    assert list(manager.budget.resident) == ["unet"]  # the text encoder was sent away when the UNet ran


def test_hash_is_computed_in_the_background(models_dir: Path, tmp_path: Path) -> None:
    cache = HashCache(tmp_path / "cache.json")
    hasher = BackgroundHasher(cache)
    registry = _registry(models_dir, hash_cache=cache)
    manager = _manager(registry, FP32, loader=load, hasher=hasher)
    model = manager.load("sd1")
    assert model is manager.current  # returned without waiting for the hash
    expected = hashlib.sha256((models_dir / "sd1.safetensors").read_bytes()).hexdigest()
    assert manager.shorthash(timeout=30) == expected[:10]
    hasher.shutdown(wait=True)
    assert model.checkpoint.sha256 == expected
    assert model.checkpoint.title == f"sd1.safetensors [{expected[:10]}]"
    assert registry.get(expected[:10]) is model.checkpoint
    registry.refresh()  # a rescan takes the hash from the cache
    assert registry.get("sd1").title == f"sd1.safetensors [{expected[:10]}]"


def test_vae_switch_without_reloading_the_checkpoint(models_dir: Path, tmp_path: Path) -> None:
    state = load_file(models_dir / "sd1.safetensors")
    vae_file = tmp_path / "other-vae.safetensors"
    save_file({k.removeprefix("first_stage_model."): v + 1 for k, v in state.items()
               if k.startswith("first_stage_model.")}, vae_file)
    choice = {"vae": VaeResolution(None, "own")}
    manager = _manager(_registry(models_dir), FP32, loader=load, vae_resolver=lambda info, options: choice["vae"])
    model = manager.load("sd1")
    own = model.vae.decoder.conv_in.weight.clone()
    unet = model.unet
    choice["vae"] = VaeResolution(vae_file, "specified in settings")
    assert manager.reload_vae() is model
    assert model.unet is unet and model.vae_name == "other-vae.safetensors"
    assert torch.equal(model.vae.decoder.conv_in.weight, own + 1)
    choice["vae"] = VaeResolution(None, "own")
    manager.reload_vae()
    assert torch.equal(model.vae.decoder.conv_in.weight, own)


def test_no_hashing_leaves_titles_unhashed(models_dir: Path, tmp_path: Path) -> None:
    cache = HashCache(tmp_path / "cache.json", enabled=False)
    hasher = BackgroundHasher(cache)
    manager = _manager(_registry(models_dir, hash_cache=cache), FP32, loader=load, hasher=hasher)
    model = manager.load("sd1")
    assert manager.shorthash(timeout=30) is None
    hasher.shutdown(wait=True)
    assert model.checkpoint.title == "sd1.safetensors" and not (tmp_path / "cache.json").exists()


def test_lowvram_gives_the_same_result_with_less_on_the_device(models_dir: Path) -> None:
    normal = _manager(_registry(models_dir), FP32, loader=load)
    expected = _denoise(normal.load("sd1"))
    low = _manager(_registry(models_dir), FP32, loader=load, offload=OffloadFlags(lowvram=True))
    model = low.load("sd1")
    assert low.budget.current == 0  # nothing is placed until it runs
    assert torch.equal(_denoise(model), expected)
    # one unit at a time: the peak is the largest single unit (here the text encoder, whose 49408-token
    # embedding dominates a tiny model), never the sum
    assert low.budget.peak == tensor_bytes(model.text_encoder_module) < model.weight_bytes()
    assert normal.budget.peak == model.weight_bytes()


def test_a_model_too_big_for_the_device_leaves_the_previous_one(models_dir: Path) -> None:
    manager = _manager(_registry(models_dir), FP32, loader=load)
    sd1 = manager.load("sd1")
    manager.budget.limit = sd1.weight_bytes() + 1  # a simulated device that fits sd1 but not the SDXL model
    with pytest.raises(DeviceBudgetExceeded):
        manager.load("sdxl")
    assert manager.current is sd1 and manager.on_device
    assert manager.budget.current == sd1.weight_bytes()
    assert torch.isfinite(_denoise(sd1)).all()


@pytest.mark.parametrize(("family", "kind"), [("sd1", "sd1"), ("sd2", "sd2"), ("sdxl", "sdxl"),
                                              ("sdxl-refiner", "sdxl-refiner")])
def test_default_builders_build_the_real_text_encoders(family: str, kind: str,
                                                       tiny_checkpoint: Callable[..., Path]) -> None:
    model = load_checkpoint(CheckpointInfo.from_path(tiny_checkpoint(family)), FP32)
    assert model.text_encoders.kind == kind
    expected = {"sd1": {"clip_l"}, "sd2": {"open_clip"}, "sdxl": {"clip_l", "open_clip"},
                "sdxl-refiner": {"open_clip"}}[family]
    assert set(model.text_encoder_module) == expected
    assert set(model.components()) == {"text_encoder", "unet", "vae"}


def test_medvram_activates_text_encoders_through_their_methods(tiny_checkpoint: Callable[..., Path]) -> None:
    model = load_checkpoint(CheckpointInfo.from_path(tiny_checkpoint("sdxl")), FP32)
    budget = DeviceBudget()
    model.offloader = ModelOffloader(model.components(), OffloadPolicy("medvram"), "cpu", budget=budget)
    tokens = torch.tensor([[49406, 320, 49407] + [49407] * 74])
    model.text_encoders.open_clip.encode_tokens(tokens)  # no top-level forward: a submodule hook activates it
    assert list(budget.resident) == ["text_encoder"]
    with torch.no_grad():
        model.vae.decode(torch.zeros(1, 4, 4, 4))
    assert list(budget.resident) == ["vae"]
    model.detach_offloader()


def test_a_switch_frees_the_old_model_without_a_full_garbage_collection(models_dir: Path) -> None:
    """Refcounting frees the dropped model; a full collection walks every object of the process (seconds in a large
    one, e.g. the app after many jobs) and runs only when something still keeps the model alive."""
    manager = _manager(_registry(models_dir), FP32, loader=load)
    old = weakref.ref(manager.load("sd1.safetensors"))
    full_collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            full_collections.append(1)

    gc.callbacks.append(count)
    gc.disable()  # only explicit collections are counted
    try:
        manager.load("sdxl.safetensors")
    finally:
        gc.enable()
        gc.callbacks.remove(count)
    assert old() is None
    assert not full_collections
