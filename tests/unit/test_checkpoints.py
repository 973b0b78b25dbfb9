"""Checkpoint discovery, A1111 names/titles/lookup, and the sidecar files next to a checkpoint."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from modules.models import hashes, sidecars
from modules.models.checkpoints import CheckpointRegistry


def _touch(path: Path, content: bytes = b"weights") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    sd = tmp_path / "models" / "Stable-diffusion"
    files = {
        "model10": _touch(sd / "model10.safetensors"),
        "model2": _touch(sd / "model2.ckpt", b"second"),
        "sub": _touch(sd / "anime" / "Cute Model.safetensors", b"anime"),
        "hidden": _touch(sd / ".trash" / "old.safetensors"),
        "vae_sidecar": _touch(sd / "model2.vae.safetensors"),
        "vae_ckpt_sidecar": _touch(sd / "model2.vae.ckpt"),
        "yaml": _touch(sd / "model2.yaml", b"model:\n  params:\n    parameterization: \"v\"\n"),
        "other": _touch(sd / "notes.txt"),
        "extra": _touch(tmp_path / "extra-ckpts" / "extra.safetensors"),
        "cli": _touch(tmp_path / "model.ckpt", b"cli"),
    }
    files["sd"] = sd
    return files


def test_discovery_sorting_and_exclusions(tree: dict[str, Path]) -> None:
    registry = CheckpointRegistry(tree["sd"], ckpt_dir=tree["extra"].parent)
    assert [info.name for info in registry] == [
        ".trash/old.safetensors", "anime/Cute Model.safetensors", "extra.safetensors", "model2.ckpt",
        "model10.safetensors",
    ]
    assert CheckpointRegistry(tree["sd"], include_hidden=False).titles() == [
        "anime/Cute Model.safetensors", "model2.ckpt", "model10.safetensors",
    ]


def test_ckpt_flag_adds_and_selects(tree: dict[str, Path]) -> None:
    registry = CheckpointRegistry(tree["sd"], ckpt_file=tree["cli"])
    assert registry.default is not None and registry.default.filename == tree["cli"].absolute()
    assert registry.default.name == "model.ckpt"
    assert "model.ckpt" in registry.titles()
    without = CheckpointRegistry(tree["sd"], ckpt_file=tree["sd"] / "absent.ckpt", include_hidden=False)
    assert without.default is not None and without.default.name == "anime/Cute Model.safetensors"


def test_names_titles_and_sidecars(tree: dict[str, Path], tmp_path: Path) -> None:
    cache = hashes.HashCache(tmp_path / "cache.json")
    registry = CheckpointRegistry(tree["sd"], hash_cache=cache)
    sub = registry.get("anime/Cute Model.safetensors")
    assert sub is not None
    assert sub.model_name == "anime_Cute Model"
    assert sub.name_for_extra == "Cute Model"
    assert sub.title == "anime/Cute Model.safetensors"  # not hashed yet: listing never hashes
    assert sub.legacy_hash == hashlib.sha256(b"").hexdigest()[:8]

    full = cache.sha256(sub.filename, sub.hash_cache_key)
    assert full == hashlib.sha256(b"anime").hexdigest()
    registry.refresh()
    sub = registry.get("anime/Cute Model.safetensors")
    assert sub is not None
    assert sub.title == f"anime/Cute Model.safetensors [{full[:10]}]"
    assert sub.short_title == f"Cute Model [{full[:10]}]"

    model2 = registry.get("model2")
    assert model2 is not None
    assert model2.config_path == tree["yaml"]
    assert model2.vae_sidecars == [tree["vae_ckpt_sidecar"], tree["vae_sidecar"]]


def test_lookup_by_every_id_and_closest_match(tree: dict[str, Path], tmp_path: Path) -> None:
    content = os.urandom(0x100000 + 0x10000)  # big enough for a distinct legacy hash
    tree["model2"].write_bytes(content)
    cache = hashes.HashCache(tmp_path / "cache.json")
    cache.sha256(tree["model2"], "checkpoint/model2.ckpt")
    registry = CheckpointRegistry(tree["sd"], hash_cache=cache, include_hidden=False)
    info = registry.get("model2.ckpt")
    assert info is not None and info.sha256 == hashlib.sha256(content).hexdigest()
    for identifier in (info.title, info.name, info.model_name, info.name_for_extra, info.shorthash, info.sha256,
                       info.legacy_hash, info.short_title):
        assert registry.get(identifier) is info, identifier
    assert registry.get("nothing") is None
    assert registry.get_closest("Cute") is registry.get("anime/Cute Model.safetensors")
    # infotext from another machine: same name, different hash → matched by name without the hash
    assert registry.get_closest("model2.ckpt [deadbeef00]") is info
    assert registry.get_closest("unknown [0123456789]") is None


def test_yaml_hints_sd2_v_sdxl_v_and_inpaint(tmp_path: Path) -> None:
    sd2 = _touch(tmp_path / "a.yaml", b"model:\n  params:\n    parameterization: \"v\"\n    unet_config:\n"
                 b"      params:\n        in_channels: 4\n")
    hints = sidecars.read_config_hints(sd2)
    assert (hints.prediction_type, hints.in_channels) == ("v", 4)
    sdxl = _touch(tmp_path / "b.yaml", b"model:\n  params:\n    denoiser_config:\n      params:\n        scaling_config:\n"
                  b"          target: sgm.modules.diffusionmodules.denoiser_scaling.VScalingWithEDMcNoise\n"
                  b"    network_config:\n      params:\n        in_channels: 9\n")
    hints = sidecars.read_config_hints(sdxl)
    assert (hints.prediction_type, hints.in_channels) == ("v", 9)
    eps = _touch(tmp_path / "c.yaml", b"model:\n  params:\n    linear_start: 0.00085\n")
    assert sidecars.read_config_hints(eps).prediction_type is None


def test_yaml_hints_without_pyyaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml → ImportError
    path = _touch(tmp_path / "a.yaml", b"model:\n  params:\n    parameterization: 'v' # v-pred\n    unet_config:\n"
                  b"      params:\n        in_channels: 9\n    first_stage_config:\n      params:\n"
                  b"        ddconfig:\n          in_channels: 3\n")
    hints = sidecars.read_config_hints(path)
    assert (hints.prediction_type, hints.in_channels) == ("v", 9)


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = _touch(tmp_path / "broken.yaml", b"model: [unclosed\n")
    with pytest.raises(ValueError, match=r"broken\.yaml"):
        sidecars.read_config_hints(path)


def test_state_dict_markers_and_user_metadata(tmp_path: Path) -> None:
    assert sidecars.state_dict_markers(["v_pred", "model.diffusion_model.out.2.weight"]).v_prediction
    assert not sidecars.state_dict_markers(["model.diffusion_model.out.2.weight"]).v_prediction
    assert sidecars.state_dict_markers(["ztsnr"]).zero_terminal_snr
    checkpoint = _touch(tmp_path / "m.safetensors")
    assert sidecars.read_user_metadata(checkpoint) == {}
    (tmp_path / "m.json").write_text(json.dumps({"vae": "None", "notes": "x"}))
    assert sidecars.read_user_metadata(checkpoint)["vae"] == "None"
    (tmp_path / "m.json").write_text("{broken")
    assert sidecars.read_user_metadata(checkpoint) == {}
