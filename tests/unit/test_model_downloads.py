"""A1111's named upscalers (modules/postprocessing/model_downloads.py): names, files, mirrors, the filter settings,
and how the registry lists them next to the files a user put in the folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from modules.postprocessing.model_downloads import NAMED_MODELS, ModelDownloadError, enabled, fetch_model
from modules.postprocessing.upscalers import UpscalerRegistry

BY_NAME = {m.name: m for m in NAMED_MODELS}


def test_a1111_names_folders_and_file_names() -> None:
    assert BY_NAME["R-ESRGAN 4x+"].file_name == "RealESRGAN_x4plus.pth"
    assert BY_NAME["R-ESRGAN 4x+ Anime6B"].url.endswith("/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth")
    assert (BY_NAME["ESRGAN_4x"].folder, BY_NAME["ESRGAN_4x"].file_name) == ("ESRGAN", "ESRGAN_4x.pth")
    assert BY_NAME["SwinIR 4x"].file_name == "SwinIR_4x.pth"
    assert BY_NAME["ScuNET GAN"].file_name == "ScuNET.pth" and BY_NAME["ScuNET PSNR"].url.endswith("psnr.pth")
    assert [BY_NAME[f"DAT x{n}"].scale for n in (2, 3, 4)] == [2, 3, 4]
    assert all(BY_NAME[f"DAT x{n}"].sha256 for n in (2, 3, 4))
    assert "LDSR" not in BY_NAME


def test_mirrors_replace_the_hosts() -> None:
    env = {"GITHUB_ENDPOINT": "http://mirror.local/gh/", "HF_ENDPOINT": "https://hf-mirror.com"}
    assert BY_NAME["ESRGAN_4x"].source(env) == "http://mirror.local/gh/cszn/KAIR/releases/download/v1.0/ESRGAN.pth"
    assert BY_NAME["DAT x2"].source(env).startswith("https://hf-mirror.com/w-e-w/DAT/resolve/main/")
    assert BY_NAME["ESRGAN_4x"].source({}) == BY_NAME["ESRGAN_4x"].url


def test_filter_settings_choose_realesrgan_and_dat_entries() -> None:
    assert enabled(BY_NAME["R-ESRGAN 4x+"], None) and not enabled(BY_NAME["R-ESRGAN 2x+"], None)
    settings = {"realesrgan_enabled_models": ["R-ESRGAN 2x+"], "dat_enabled_models": []}
    assert enabled(BY_NAME["R-ESRGAN 2x+"], settings) and not enabled(BY_NAME["R-ESRGAN 4x+"], settings)
    assert not enabled(BY_NAME["DAT x4"], settings) and enabled(BY_NAME["SwinIR 4x"], settings)


def test_registry_lists_named_models_and_uses_a_local_file_of_the_same_name(tmp_path: Path) -> None:
    folders = {kind: tmp_path / kind for kind in ("ESRGAN", "RealESRGAN", "SwinIR", "DAT", "ScuNET")}
    folders["RealESRGAN"].mkdir()
    (folders["RealESRGAN"] / "RealESRGAN_x4plus.pth").write_bytes(b"x")
    registry = UpscalerRegistry(folders, named_models=NAMED_MODELS, settings={"dat_enabled_models": ["DAT x3"]})
    names = registry.names()
    assert "RealESRGAN_x4plus" not in names  # the file is the "R-ESRGAN 4x+" entry, not listed twice
    assert registry["R-ESRGAN 4x+"].path == folders["RealESRGAN"] / "RealESRGAN_x4plus.pth"
    assert "DAT x3" in names and "DAT x2" not in names
    assert registry["SwinIR 4x"].path == folders["SwinIR"] / "SwinIR_4x.pth"
    assert registry["SwinIR 4x"].api_entry()["model_url"] == BY_NAME["SwinIR 4x"].url


def test_offline_fetch_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ModelDownloadError, match=r"Download https://github\.com/.* by hand and save it as"):
        fetch_model(BY_NAME["ESRGAN_4x"], tmp_path / "ESRGAN_4x.pth", {"HF_HUB_OFFLINE": "1"})
    assert not (tmp_path / "ESRGAN_4x.pth").exists()
