"""Compatibility: `from modules import script_callbacks` for A1111-style scripts (re-exports only; see
docs/extensions.md).  The `on_*` functions register on `modules.extensions.callbacks.default_registry`.
"""

from __future__ import annotations

from modules.extensions.callbacks import (
    AfterCFGCallbackParams,
    BeforeTokenCounterParams,
    CFGDenoisedParams,
    CFGDenoiserParams,
    ExtraNoiseParams,
    ImageGridLoopParams,
    ImageSaveParams,
    UiTrainTabParams,
    default_registry,
)

on_app_started = default_registry.on_app_started
on_before_reload = default_registry.on_before_reload
on_model_loaded = default_registry.on_model_loaded
on_ui_tabs = default_registry.on_ui_tabs
on_ui_train_tabs = default_registry.on_ui_train_tabs
on_ui_settings = default_registry.on_ui_settings
on_before_image_saved = default_registry.on_before_image_saved
on_image_saved = default_registry.on_image_saved
on_extra_noise = default_registry.on_extra_noise
on_cfg_denoiser = default_registry.on_cfg_denoiser
on_cfg_denoised = default_registry.on_cfg_denoised
on_cfg_after_cfg = default_registry.on_cfg_after_cfg
on_before_component = default_registry.on_before_component
on_after_component = default_registry.on_after_component
on_image_grid = default_registry.on_image_grid
on_infotext_pasted = default_registry.on_infotext_pasted
on_script_unloaded = default_registry.on_script_unloaded
on_before_ui = default_registry.on_before_ui
on_list_optimizers = default_registry.on_list_optimizers
on_list_unets = default_registry.on_list_unets
on_before_token_counter = default_registry.on_before_token_counter
remove_callbacks_for_function = default_registry.remove_callback
clear_callbacks = default_registry.clear

__all__ = [
    "AfterCFGCallbackParams",
    "BeforeTokenCounterParams",
    "CFGDenoisedParams",
    "CFGDenoiserParams",
    "ExtraNoiseParams",
    "ImageGridLoopParams",
    "ImageSaveParams",
    "UiTrainTabParams",
    "clear_callbacks",
    "on_after_component",
    "on_app_started",
    "on_before_component",
    "on_before_image_saved",
    "on_before_reload",
    "on_before_token_counter",
    "on_before_ui",
    "on_cfg_after_cfg",
    "on_cfg_denoised",
    "on_cfg_denoiser",
    "on_extra_noise",
    "on_image_grid",
    "on_image_saved",
    "on_infotext_pasted",
    "on_list_optimizers",
    "on_list_unets",
    "on_model_loaded",
    "on_script_unloaded",
    "on_ui_settings",
    "on_ui_tabs",
    "on_ui_train_tabs",
    "remove_callbacks_for_function",
]
