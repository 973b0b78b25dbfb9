"""Settings declarations: A1111 keys, defaults, sections and infotext names; typed validation; set/update rules;
freeze policies; per-job snapshots that never leak into the global settings."""

from __future__ import annotations

import pytest

from modules.settings import (
    CATEGORIES,
    REGISTRY,
    FreezePolicy,
    OptionRegistry,
    Settings,
    SettingsFrozenError,
    SettingsSnapshot,
    SettingValueError,
    UnknownSettingError,
    check,
    section,
)
from modules.settings.registry import RESTRICTED_KEYS

# A sample of A1111 1.10 keys and defaults from the reference (§3.8 of a1111-features.md).
A1111_DEFAULTS: dict[str, object] = {
    "samples_save": True, "samples_format": "png", "samples_filename_pattern": "", "save_images_add_number": True,
    "save_images_replace_action": "Replace", "grid_save": True, "grid_format": "png", "n_rows": -1,
    "grid_text_inactive_color": "#999999", "jpeg_quality": 80, "webp_lossless": False, "export_for_4chan": True,
    "img_downscale_threshold": 4.0, "target_side_length": 4000, "img_max_size_mp": 200, "notification_volume": 100,
    "outdir_samples": "", "outdir_txt2img_samples": "outputs/txt2img-images", "outdir_save": "log/images",
    "outdir_init_images": "outputs/init-images", "save_to_dirs": True, "directories_filename_pattern": "[date]",
    "directories_max_prompt_words": 8, "ESRGAN_tile": 192, "ESRGAN_tile_overlap": 8,
    "realesrgan_enabled_models": ["R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B"], "upscaler_for_img2img": None,
    "face_restoration": False, "face_restoration_model": "CodeFormer", "code_former_weight": 0.5,
    "auto_launch_browser": "Local", "memmon_poll_rate": 8, "multiple_tqdm": True, "list_hidden_files": True,
    "api_enable_requests": True, "api_forbid_local_requests": True, "api_useragent": "",
    "training_write_csv_every": 500, "dataset_filename_join_string": " ",
    "sd_model_checkpoint": None, "sd_checkpoints_limit": 1, "sd_checkpoints_keep_in_cpu": True,
    "sd_checkpoint_cache": 0, "sd_unet": "Automatic", "emphasis": "Original",
    "comma_padding_backtrack": 20, "CLIP_stop_at_last_layers": 1, "sdxl_clip_l_skip": False, "upcast_attn": False,
    "randn_source": "GPU", "tiling": False, "hires_fix_refiner_pass": "second pass", "enable_prompt_comments": True,
    "sdxl_crop_top": 0, "sdxl_refiner_low_aesthetic_score": 2.5, "sdxl_refiner_high_aesthetic_score": 6.0,
    "sd_vae_checkpoint_cache": 0, "sd_vae": "Automatic",
    "sd_vae_overrides_per_model_preferences": True, "auto_vae_precision": True, "sd_vae_encode_method": "Full",
    "inpainting_mask_weight": 1.0, "initial_noise_multiplier": 1.0, "img2img_extra_noise": 0.0,
    "img2img_background_color": "#ffffff", "img2img_editor_height": 720, "img2img_batch_show_results_limit": 32,
    "overlay_inpaint": True, "cross_attention_optimization": "Automatic", "s_min_uncond": 0.0,
    "token_merging_ratio": 0.0, "pad_cond_uncond": False, "persistent_cond_cache": True, "batch_cond_uncond": True,
    "fp8_storage": "Disable", "auto_backcompat": True, "use_old_emphasis_implementation": False,
    "use_old_scheduling": False, "interrogate_clip_num_beams": 1, "interrogate_clip_min_length": 24,
    "interrogate_clip_max_length": 48, "interrogate_clip_dict_limit": 1500,
    "interrogate_deepbooru_score_threshold": 0.5, "deepbooru_escape": True,
    "extra_networks_hidden_models": "When searched", "extra_networks_default_multiplier": 1.0,
    "extra_networks_add_text_separator": " ", "sd_hypernetwork": "None", "sd_lora": "None",
    "lora_preferred_name": "Alias from file", "lora_add_hashes_to_infotext": True, "lora_in_memory_limit": 0,
    "keyedit_precision_attention": 0.1, "keyedit_precision_extra": 0.05, "js_modal_lightbox": True,
    "open_dir_button_choice": "Subdirectory", "samplers_in_dropdown": True, "interrupt_after_current": True,
    "localization": "None", "quicksettings_list": ["sd_model_checkpoint"], "ui_tab_order": [], "hidden_tabs": [],
    "gradio_theme": "Default", "send_seed": True, "enable_pnginfo": True, "save_txt": False,
    "add_model_hash_to_info": True, "add_user_name_to_info": False, "disable_weights_auto_swap": True,
    "infotext_styles": "Apply if any", "show_progressbar": True, "live_previews_image_format": "png",
    "show_progress_every_n_steps": 10, "show_progress_type": "Approx NN", "live_preview_content": "Prompt",
    "live_preview_refresh_period": 1000, "hide_samplers": [], "eta_ddim": 0.0, "eta_ancestral": 1.0,
    "s_churn": 0.0, "s_tmin": 0.0, "s_tmax": 0.0, "s_noise": 1.0, "sigma_min": 0.0,
    "sigma_max": 0.0, "rho": 0.0, "eta_noise_seed_delta": 0, "always_discard_next_to_last_sigma": False,
    "sgm_noise_multiplier": False, "uni_pc_variant": "bh1", "uni_pc_skip_type": "time_uniform", "uni_pc_order": 3,
    "uni_pc_lower_order_final": True, "sd_noise_schedule": "Default", "skip_early_cond": 0.0,
    "beta_dist_alpha": 0.6, "beta_dist_beta": 0.6, "postprocessing_enable_in_main_ui": [],
    "upscaling_max_images_in_cache": 5, "postprocessing_existing_caption_action": "Ignore",
    "disabled_extensions": [], "disable_all_extensions": "none", "sd_checkpoint_hash": "",
    "canvas_hotkey_zoom": "Alt", "canvas_disabled_functions": ["Overlap"], "hypertile_max_tile_unet": 256,
    "hypertile_max_tile_vae": 128,
}


@pytest.mark.parametrize(("key", "default"), A1111_DEFAULTS.items(), ids=list(A1111_DEFAULTS))
def test_a1111_defaults(key, default):
    settings = Settings()
    assert settings.get(key) == default
    assert type(settings.get(key)) is type(default)
    assert getattr(settings, key) == default  # A1111's opts.<key> access


@pytest.mark.parametrize(("key", "section_id", "category"), [
    ("samples_save", "saving-images", "saving"), ("outdir_grids", "saving-paths", "saving"),
    ("save_to_dirs", "saving-to-dirs", "saving"), ("ESRGAN_tile", "upscaling", "postprocessing"),
    ("face_restoration", "face-restoration", "postprocessing"), ("memmon_poll_rate", "system", "system"),
    ("pin_memory", "training", "training"), ("sd_model_checkpoint", "sd", "sd"), ("sd_vae", "vae", "sd"),
    ("use_old_karras_scheduler_sigmas", "compatibility", "sd"), ("interrogate_return_ranks", "interrogate", None),
    ("sd_hypernetwork", "extra_networks", "sd"), ("quicksettings_list", "ui", "ui"),
    ("live_previews_enable", "ui", "ui"), ("s_churn", "sampler-params", "sd"),
    ("postprocessing_operation_order", "postprocessing", "postprocessing"),
])
def test_sections_and_categories(key, section_id, category):
    info = REGISTRY[key]
    assert info.section.id == section_id
    assert info.section.category == category
    assert info.section.category_label == CATEGORIES.get(category or "", "Uncategorized")


def test_infotext_names_and_flags():
    assert REGISTRY["CLIP_stop_at_last_layers"].infotext == "Clip skip"
    assert REGISTRY["eta_noise_seed_delta"].infotext == "ENSD"
    assert REGISTRY["randn_source"].infotext == "RNG"
    assert REGISTRY["sd_vae"].infotext == "VAE"
    assert REGISTRY["emphasis"].choices == ("None", "Ignore", "Original", "No norm")
    assert REGISTRY["api_useragent"].restrict_api
    assert REGISTRY["localization"].needs_reload_ui
    assert REGISTRY["CLIP_stop_at_last_layers"].minimum == 1 and REGISTRY["CLIP_stop_at_last_layers"].maximum == 12
    labels = [s.label for s in REGISTRY.sections()]
    assert labels.index("Saving images/grids") < labels.index("Stable Diffusion") < labels.index("Sampler parameters")


def test_unknown_key_names_key_and_suggests():
    with pytest.raises(UnknownSettingError, match=r"'samples_sav'.*'samples_save'"):
        Settings().get("samples_sav")
    with pytest.raises(UnknownSettingError, match="CLIP_stop_at_last_layers"):
        Settings().set("clip_skip", 2)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("samples_save", "yes", "expected true or false"),
    ("jpeg_quality", 101, "at most 100"),
    ("jpeg_quality", 50.5, "whole number"),
    ("CLIP_stop_at_last_layers", 0, "at least 1"),
    ("randn_source", "GPU2", "not one of"),
    ("emphasis", "original", "not one of"),
    ("quicksettings_list", "sd_vae", "expected a list"),
    ("lora_hide_unknown_for_versions", ["SD3"], "not one of"),
    ("grid_background_color", "white", "colour"),
    ("samples_format", None, "got null"),
    ("eta_ancestral", float("nan"), "expected a number"),
    ("eta_noise_seed_delta", True, "whole number"),
])
def test_bad_values_are_refused_naming_the_key(key, value, message):
    settings = Settings()
    with pytest.raises(SettingValueError) as info:
        settings.set(key, value)
    assert repr(key) in str(info.value) and message in str(info.value)
    assert settings.get(key) == REGISTRY[key].default


def test_values_are_coerced_like_a1111_typemap():
    settings = Settings()
    assert settings.set("jpeg_quality", 95.0) and settings.jpeg_quality == 95
    assert type(settings.jpeg_quality) is int
    assert settings.set("eta_ancestral", 0) and settings.eta_ancestral == 0.0
    assert type(settings.eta_ancestral) is float
    assert settings.set("sd_model_checkpoint", "v1-5.safetensors [6ce0161689]")
    assert settings.set("sd_model_checkpoint", None) is True  # None allowed where A1111's default is None
    assert settings.set("hide_samplers", ("DDIM",)) and settings.hide_samplers == ["DDIM"]


def test_set_reports_change_and_get_returns_copies():
    settings = Settings()
    assert settings.set("samples_format", "jpg") is True
    assert settings.set("samples_format", "jpg") is False
    assert settings.set("n_rows", -1) is False  # equal to the default
    quick = settings.quicksettings_list
    quick.append("sd_vae")
    assert settings.quicksettings_list == ["sd_model_checkpoint"]


def test_cast_from_text_like_infotext():
    assert REGISTRY["eta_noise_seed_delta"].cast("31337") == 31337
    assert REGISTRY["CLIP_stop_at_last_layers"].cast(" 2 ") == 2
    assert REGISTRY["always_discard_next_to_last_sigma"].cast("False") is False
    assert REGISTRY["s_noise"].cast("1.003") == pytest.approx(1.003)
    assert REGISTRY["hide_samplers"].cast("DDIM, PLMS") == ["DDIM", "PLMS"]
    with pytest.raises(SettingValueError, match="eta_ancestral"):
        REGISTRY["eta_ancestral"].cast("lots")


def test_update_is_all_or_nothing():
    settings = Settings()
    with pytest.raises(SettingValueError) as info:
        settings.update({"samples_format": "webp", "jpeg_quality": 0, "n_rows": "x"})
    assert "'jpeg_quality'" in str(info.value) and "'n_rows'" in str(info.value)
    assert settings.samples_format == "png"
    assert settings.update({"samples_format": "webp", "jpeg_quality": 90}) == ["samples_format", "jpeg_quality"]


def test_freeze_all_refuses_set_and_save(tmp_path):
    settings = Settings(tmp_path / "config.json", freeze=FreezePolicy(all=True))
    with pytest.raises(SettingsFrozenError, match="--freeze-settings"):
        settings.set("samples_save", False)
    with pytest.raises(SettingsFrozenError, match="not saved"):
        settings.save()
    assert not (tmp_path / "config.json").exists()
    assert settings.samples_save is True


def test_freeze_sections_keys_and_restricted_dirs():
    policy = FreezePolicy(sections=frozenset({"upscaling"}), keys=frozenset({"samples_format"}),
                          restricted=RESTRICTED_KEYS)
    settings = Settings(freeze=policy)
    for key, flag in (("ESRGAN_tile", "--freeze-settings-in-sections"), ("samples_format", "--freeze-specific"),
                      ("outdir_txt2img_samples", "--hide-ui-dir-config")):
        with pytest.raises(SettingsFrozenError, match=flag):
            settings.set(key, settings.get(key))
    assert settings.set("jpeg_quality", 70)


def test_restrict_api_options_refused_through_the_api():
    settings = Settings()
    with pytest.raises(SettingsFrozenError, match="through the API"):
        settings.set("api_enable_requests", False, is_api=True)
    assert settings.set("api_enable_requests", False)


def test_default_overrides_for_path_dependent_defaults():
    settings = Settings(default_overrides={"outdir_txt2img_samples": "/data/outputs/txt2img-images"})
    assert settings.outdir_txt2img_samples == "/data/outputs/txt2img-images"
    assert settings.default("outdir_txt2img_samples") == "/data/outputs/txt2img-images"
    with pytest.raises(SettingValueError):
        Settings(default_overrides={"jpeg_quality": 1000})


# --- snapshots ------------------------------------------------------------------------------------------------------

def test_snapshot_applies_overrides_without_touching_globals():
    settings = Settings()
    settings.set("eta_ancestral", 0.5)
    snap = settings.snapshot({"CLIP_stop_at_last_layers": 2, "sd_vae": "None"})
    assert isinstance(snap, SettingsSnapshot)
    assert snap.CLIP_stop_at_last_layers == 2 and snap["sd_vae"] == "None"
    assert snap.eta_ancestral == 0.5  # global value seen
    assert settings.CLIP_stop_at_last_layers == 1 and settings.sd_vae == "Automatic"
    assert dict(snap.overrides) == {"CLIP_stop_at_last_layers": 2, "sd_vae": "None"}
    assert settings.snapshot().CLIP_stop_at_last_layers == 1  # the next job does not inherit overrides


def test_snapshot_is_immutable_and_isolated_from_later_changes():
    settings = Settings()
    snap = settings.snapshot({"hide_samplers": ["DDIM"]})
    with pytest.raises(AttributeError):
        snap.eta_ancestral = 0.0
    with pytest.raises(TypeError):
        snap["eta_ancestral"] = 0.0  # type: ignore[index]
    assert snap.hide_samplers == ("DDIM",)
    with pytest.raises(AttributeError):
        snap.quicksettings_list.append("x")
    settings.set("eta_ancestral", 0.25)
    assert snap.eta_ancestral == 1.0
    assert settings.hide_samplers == []


def test_snapshot_rejects_unknown_and_bad_overrides():
    settings = Settings()
    with pytest.raises(UnknownSettingError, match="'not_a_setting'"):
        settings.snapshot({"not_a_setting": 1})
    with pytest.raises(SettingValueError, match="'CLIP_stop_at_last_layers'"):
        settings.snapshot({"CLIP_stop_at_last_layers": 20})
    with pytest.raises(SettingsFrozenError, match="'api_useragent'"):
        settings.snapshot({"api_useragent": "x"}, is_api=True)


def test_snapshot_respects_freeze_unless_told_not_to():
    settings = Settings(freeze=FreezePolicy(keys=frozenset({"CLIP_stop_at_last_layers"})))
    with pytest.raises(SettingsFrozenError):
        settings.snapshot({"CLIP_stop_at_last_layers": 2})
    assert settings.snapshot({"CLIP_stop_at_last_layers": 2}, honour_freeze=False).CLIP_stop_at_last_layers == 2


def test_registry_accepts_extension_options_and_refuses_duplicates():
    registry = OptionRegistry(REGISTRY.values())
    registry.register(section("my_ext", "My extension", None, {"my_ext_enabled": check(True, "Enable")}))
    settings = Settings(registry=registry)
    assert settings.my_ext_enabled is True
    with pytest.raises(Exception, match="declared twice"):
        registry.register(section("x", "X", None, {"samples_save": check(False, "again")}))
    assert "my_ext_enabled" not in REGISTRY
