"""config.json persistence: load, unknown keys kept, A1111 migrations, atomic save that survives SIGKILL, .bak,
corrupt-file recovery, flag glue (freeze flags, path-dependent defaults)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modules.cli.app_settings import freeze_policy, load_settings
from modules.cli.flags import INSTALL_ROOT, parse_flags
from modules.cli.paths import resolve_paths
from modules.settings import Settings, SettingsFrozenError
from modules.settings.atomic import atomic_write_text, remove_stale_temp_files


def test_missing_file_means_defaults_without_warnings(tmp_path):
    settings, warnings = Settings.load(tmp_path / "config.json")
    assert warnings == []
    assert settings.samples_save is True
    assert settings.stored() == {}


def test_round_trip_keeps_unknown_keys_and_formats_like_a1111(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"samples_format": "jpg", "some_extension_option": {"nested": [1, 2]},
                                "sd_model_checkpoint": "photo/ümlaut.safetensors [abc]"}), encoding="utf8")
    settings, warnings = Settings.load(path)
    assert warnings == []
    assert settings.samples_format == "jpg"
    assert settings.get("some_extension_option") == {"nested": [1, 2]}
    settings.set("jpeg_quality", 95)
    settings.save()
    text = path.read_text(encoding="utf8")
    assert '    "samples_format": "jpg"' in text  # indent 4
    assert "ümlaut" in text  # ensure_ascii=False
    assert json.loads(text) == {"samples_format": "jpg", "some_extension_option": {"nested": [1, 2]},
                                "sd_model_checkpoint": "photo/ümlaut.safetensors [abc]", "jpeg_quality": 95}


def test_a1111_migrations(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"sd_vae_as_default": True, "quicksettings": "sd_model_checkpoint, sd_vae",
                                "ui_reorder": "inpaint, sampler"}), encoding="utf8")
    settings, _ = Settings.load(path)
    assert settings.sd_vae_overrides_per_model_preferences is False
    assert settings.quicksettings_list == ["sd_model_checkpoint", "sd_vae"]
    assert settings.ui_reorder_list == ["inpaint", "sampler"]


def test_bad_loaded_values_warn_and_fall_back(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"jpeg_quality": "high", "samples_save": False, "randn_source": "TPU"}),
                    encoding="utf8")
    settings, warnings = Settings.load(path)
    assert len(warnings) == 2
    assert any("'jpeg_quality'" in w and "using the default 80" in w for w in warnings)
    assert any("'randn_source'" in w for w in warnings)
    assert settings.jpeg_quality == 80 and settings.samples_save is False


def test_save_keeps_previous_file_as_bak(tmp_path):
    path = tmp_path / "config.json"
    settings = Settings(path)
    settings.set("jpeg_quality", 10)
    settings.save()
    assert not path.with_name("config.json.bak").exists()
    settings.set("jpeg_quality", 20)
    settings.save()
    assert json.loads(path.with_name("config.json.bak").read_text(encoding="utf8"))["jpeg_quality"] == 10
    assert json.loads(path.read_text(encoding="utf8"))["jpeg_quality"] == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "config.json.bak"]  # no temp files left


@pytest.mark.parametrize("content", [b'{"samples_save": tru', b"[1, 2]", b"\xff\xfe\x00garbage", b""])
def test_corrupt_file_is_moved_aside_and_defaults_load_with_warning(tmp_path, content):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    settings, warnings = Settings.load(path)
    assert len(warnings) == 1 and "corrupt" in warnings[0] and "using default settings" in warnings[0]
    assert settings.samples_save is True
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("config.json.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes() == content
    assert aside[0].name in warnings[0]
    assert not path.exists()
    settings.save()
    assert json.loads(path.read_text(encoding="utf8")) == {}


def test_corrupt_file_restores_from_bak_when_it_is_good(tmp_path):
    path = tmp_path / "config.json"
    path.with_name("config.json.bak").write_text('{"jpeg_quality": 42}', encoding="utf8")
    path.write_text('{"jpeg_quality": 4', encoding="utf8")
    settings, warnings = Settings.load(path)
    assert settings.jpeg_quality == 42
    assert "restored the previous settings from config.json.bak" in warnings[0]


def test_stale_temp_files_from_a_killed_writer_are_removed(tmp_path):
    path = tmp_path / "config.json"
    stale = tmp_path / ".config.json.abc123.tmp"
    stale.write_text("{", encoding="utf8")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".config.json.def456.tmp"
    fresh.write_text("{", encoding="utf8")
    assert remove_stale_temp_files(path) == [stale]
    assert fresh.exists()


def test_atomic_write_creates_missing_directories(tmp_path):
    target = tmp_path / "a" / "b" / "config.json"
    atomic_write_text(target, "{}")
    assert target.read_text(encoding="utf8") == "{}"


_WRITER = """
import itertools, sys
sys.path.insert(0, sys.argv[2])
from modules.settings import Settings
path = sys.argv[1]
for i in itertools.count(1):
    Settings(path, data={"counter": i, "jpeg_quality": i % 100 + 1, "payload": f"{i}-" * 20000}).save()
    if i == 3:
        print("ready", flush=True)
"""


def _check_complete(path: Path) -> int:
    data = json.loads(path.read_text(encoding="utf8"))
    i = data["counter"]
    assert data["jpeg_quality"] == i % 100 + 1
    assert data["payload"] == f"{i}-" * 20000
    return i


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL semantics")
def test_save_survives_sigkill_at_any_moment(tmp_path):
    path = tmp_path / "config.json"
    rng = random.Random(1234)
    last = 0
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(INSTALL_ROOT)],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            deadline = time.monotonic() + rng.uniform(0.05, 0.4)
            while time.monotonic() < deadline:  # a concurrent reader never sees a partial file either
                _check_complete(path)
        finally:
            proc.kill()  # SIGKILL: no cleanup handlers run
            proc.wait()
        counter = _check_complete(path)
        assert counter >= 3
        bak = path.with_name("config.json.bak")
        if bak.exists():
            assert _check_complete(bak) in (counter - 1, counter)
        last = counter
    assert last > 0
    Settings.load(path)
    leftovers = [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
    assert all(p.name.startswith(".config.json.") for p in leftovers)


# --- glue with the flags -------------------------------------------------------------------------------------------

def test_load_settings_from_flags_uses_data_dir_and_freeze_flags(tmp_path):
    (tmp_path / "config.json").write_text('{"samples_format": "webp"}', encoding="utf8")
    flags = parse_flags(["--data-dir", str(tmp_path), "--freeze-specific-settings", "samples_format,nope",
                         "--freeze-settings-in-sections", "upscaling, nosuch"], env={})
    settings, warnings = load_settings(flags, resolve_paths(flags))
    assert settings.samples_format == "webp"
    assert settings.outdir_txt2img_samples == str(tmp_path / "outputs" / "txt2img-images")
    assert warnings == ["--freeze-settings-in-sections: no settings section 'nosuch'",
                        "--freeze-specific-settings: no setting 'nope'"]
    with pytest.raises(SettingsFrozenError):
        settings.set("samples_format", "png")
    with pytest.raises(SettingsFrozenError):
        settings.set("ESRGAN_tile", 0)
    settings.set("jpeg_quality", 70)
    settings.save()
    assert json.loads((tmp_path / "config.json").read_text(encoding="utf8"))["jpeg_quality"] == 70


def test_freeze_policy_from_flags():
    policy = freeze_policy(parse_flags(["--freeze-settings", "--hide-ui-dir-config"], env={}))
    assert policy.all and "outdir_samples" in policy.restricted
    assert not freeze_policy(parse_flags([], env={})).all
