"""VAE listing and A1111's resolution order (command line → setting → user metadata → near checkpoint → setting)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from modules.models.checkpoints import CheckpointInfo
from modules.models.vae_files import AUTOMATIC, NONE, VaeRegistry, read_vae_state_dict


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"vae")
    return path


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    sd = tmp_path / "models" / "Stable-diffusion"
    vae = tmp_path / "models" / "VAE"
    return {
        "sd": sd,
        "vae": vae,
        "checkpoint": _touch(sd / "dreamy.safetensors"),
        "plain_checkpoint": _touch(sd / "plain.safetensors"),
        "sidecar": _touch(sd / "dreamy.vae.safetensors"),
        "ft_mse": _touch(vae / "vae-ft-mse-840000.safetensors"),
        "sdxl": _touch(vae / "xl" / "sdxl_vae.safetensors"),
        "plain_named": _touch(vae / "plain-fixed.pt"),
        "ignored": _touch(vae / "readme.txt"),
    }


def _registry(dirs: dict[str, Path], **kwargs: object) -> VaeRegistry:
    return VaeRegistry(dirs["vae"], [dirs["sd"]], **kwargs)  # type: ignore[arg-type]


def test_listing_and_choices(dirs: dict[str, Path]) -> None:
    registry = _registry(dirs)
    assert registry.choices() == [AUTOMATIC, NONE, "dreamy.vae.safetensors", "plain-fixed.pt",
                                  "vae-ft-mse-840000.safetensors", "xl/sdxl_vae.safetensors"]
    assert registry.find("sdxl_vae.safetensors") == dirs["sdxl"].absolute()  # infotext gives the bare name


def test_automatic_prefers_the_sidecar_then_a_stem_prefix_then_the_checkpoints_own(dirs: dict[str, Path]) -> None:
    registry = _registry(dirs)
    dreamy = CheckpointInfo.from_path(dirs["checkpoint"], [dirs["sd"]])
    resolved = registry.resolve(dreamy, AUTOMATIC)
    assert resolved.path == dirs["sidecar"] and resolved.source == "found near the checkpoint"
    plain = CheckpointInfo.from_path(dirs["plain_checkpoint"], [dirs["sd"]])
    assert registry.resolve(plain, AUTOMATIC).path == dirs["plain_named"].absolute()
    dirs["plain_named"].unlink()
    registry.refresh()
    assert registry.resolve(plain, AUTOMATIC).path is None  # the VAE baked into the checkpoint


def test_setting_overrides_per_model_preferences(dirs: dict[str, Path]) -> None:
    registry = _registry(dirs)
    dreamy = CheckpointInfo.from_path(dirs["checkpoint"], [dirs["sd"]])
    (dirs["sd"] / "dreamy.json").write_text(json.dumps({"vae": "vae-ft-mse-840000.safetensors"}))
    chosen = registry.resolve(dreamy, "xl/sdxl_vae.safetensors", overrides_per_model_preferences=True)
    assert chosen.path == dirs["sdxl"].absolute() and chosen.source == "specified in settings"
    assert registry.resolve(dreamy, NONE, overrides_per_model_preferences=True).path is None
    # without the override, the user metadata wins, and then the near-checkpoint VAE beats the setting
    assert registry.resolve(dreamy, "xl/sdxl_vae.safetensors",
                            overrides_per_model_preferences=False).path == dirs["ft_mse"].absolute()
    (dirs["sd"] / "dreamy.json").write_text(json.dumps({"vae": "None"}))
    meta_none = registry.resolve(dreamy, AUTOMATIC)
    assert meta_none.path is None and meta_none.source == "from user metadata"
    (dirs["sd"] / "dreamy.json").unlink()
    assert registry.resolve(dreamy, "xl/sdxl_vae.safetensors",
                            overrides_per_model_preferences=False).path == dirs["sidecar"]


def test_vae_path_flag_wins_and_unknown_setting_falls_back(dirs: dict[str, Path],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    dreamy = CheckpointInfo.from_path(dirs["checkpoint"], [dirs["sd"]])
    forced = _registry(dirs, vae_path=dirs["ft_mse"]).resolve(dreamy, NONE)
    assert forced.path == dirs["ft_mse"] and forced.source == "from commandline argument"
    plain = CheckpointInfo.from_path(dirs["plain_checkpoint"], [dirs["sd"]])
    missing = _registry(dirs).resolve(plain, "gone.safetensors")
    assert missing.path is None
    assert "Couldn't find VAE named gone.safetensors" in caplog.text


def test_vae_state_dict_drops_training_keys_and_checkpoint_prefix(tmp_path: Path) -> None:
    bare = tmp_path / "bare.safetensors"
    save_file({"decoder.conv_in.weight": torch.ones(2), "loss.logvar": torch.zeros(1),
               "model_ema.decay": torch.zeros(1)}, bare)
    assert set(read_vae_state_dict(bare)) == {"decoder.conv_in.weight"}
    full = tmp_path / "full.ckpt"
    torch.save({"state_dict": {"first_stage_model.encoder.conv_in.bias": torch.ones(2),
                               "model.diffusion_model.out.2.bias": torch.ones(1)}}, full)
    assert set(read_vae_state_dict(full)) == {"encoder.conv_in.bias"}
