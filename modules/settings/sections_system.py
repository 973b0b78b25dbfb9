"""Settings of the Postprocessing, System and Training categories, Interrogate, and the hidden options.

Keys, defaults, labels and ranges are A1111 1.10's (`modules/shared_options.py`). The three API options are
`restrict_api` (A1111: they cannot be changed through the HTTP API). `enable_console_prompts` defaults to the
legacy `--enable-console-prompts` flag (supplied through `Settings(default_overrides=...)`). A1111's
`hide_ldm_prints` is not declared: it silences Stability-AI's ldm/sgm modules, which this app does not use
(docs/decisions.md).
"""

from __future__ import annotations

from modules.settings.options import OptionInfo, check, dropdown, multi, number, radio, section, slider, text

UPSCALING = section("upscaling", "Upscaling", "postprocessing", {
    "ESRGAN_tile": slider(192, "Tile size for ESRGAN upscalers.", 0, 512, 16, info="0 = no tiling"),
    "ESRGAN_tile_overlap": slider(8, "Tile overlap for ESRGAN upscalers.", 0, 48, 1, info="Low values = visible seam"),
    "realesrgan_enabled_models": multi(["R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B"],
                                       "Select which Real-ESRGAN models to show in the web UI.", boxes=True),
    "dat_enabled_models": multi(["DAT x2", "DAT x3", "DAT x4"], "Select which DAT models to show in the web UI.",
                                boxes=True),
    "DAT_tile": slider(192, "Tile size for DAT upscalers.", 0, 512, 16, info="0 = no tiling"),
    "DAT_tile_overlap": slider(8, "Tile overlap for DAT upscalers.", 0, 48, 1, info="Low values = visible seam"),
    "upscaler_for_img2img": dropdown(None, "Upscaler for img2img"),
    "set_scale_by_when_changing_upscaler": check(
        False, "Automatically set the Scale by factor based on the name of the selected Upscaler."),
})

FACE_RESTORATION = section("face-restoration", "Face restoration", "postprocessing", {
    "face_restoration": check(False, "Restore faces", infotext="Face restoration",
                              info="will use a third-party model on generation result to reconstruct faces"),
    "face_restoration_model": radio("CodeFormer", "Face restoration model", None),
    "code_former_weight": slider(0.5, "CodeFormer weight", 0, 1, 0.01, info="0 = maximum effect; 1 = minimum effect"),
    "face_restoration_unload": check(False, "Move face restoration model from VRAM into RAM after processing"),
})

SYSTEM = section("system", "System", "system", {
    "auto_launch_browser": radio("Local", "Automatically open webui in browser on startup",
                                 ["Disable", "Local", "Remote"]),
    "enable_console_prompts": check(False, "Print prompts to console when generating with txt2img and img2img."),
    "show_warnings": check(False, "Show warnings in console.", needs_reload_ui=True),
    "show_gradio_deprecation_warnings": check(True, "Show gradio deprecation warnings in console.",
                                              needs_reload_ui=True),
    "memmon_poll_rate": slider(8, "VRAM usage polls per second during generation.", 0, 40, 1, info="0 = disable"),
    "samples_log_stdout": check(False, "Always print all generation info to standard output"),
    "multiple_tqdm": check(True, "Add a second progress bar to the console that shows progress for an entire job."),
    "enable_upscale_progressbar": check(True, "Show a progress bar in the console for tiled upscaling."),
    "print_hypernet_extra": check(False, "Print extra hypernetwork information to console."),
    "list_hidden_files": check(True, "Load models/files in hidden directories",
                               info='directory is hidden if its name starts with "."'),
    "disable_mmap_load_safetensors": check(False, "Disable memmapping for loading .safetensors files.",
                                           info="fixes very slow loading speed in some cases"),
    "dump_stacks_on_signal": check(False, "Print stack traces before exiting the program with ctrl+c."),
})

PROFILER = section("profiler", "Profiler", "system", {
    "profiling_enable": check(False, "Enable profiling"),
    "profiling_activities": multi(["CPU"], "Activities", ["CPU", "CUDA"], boxes=True),
    "profiling_record_shapes": check(True, "Record shapes"),
    "profiling_profile_memory": check(True, "Profile memory"),
    "profiling_with_stack": check(True, "Include python stack"),
    "profiling_filename": text("trace.json", "Profile filename"),
})

API = section("API", "API", "system", {
    "api_enable_requests": check(True, "Allow http:// and https:// URLs for input images in API", restrict_api=True),
    "api_forbid_local_requests": check(True, "Forbid URLs to local resources", restrict_api=True),
    "api_useragent": text("", "User agent for requests", restrict_api=True),
})

TRAINING = section("training", "Training", "training", {
    "unload_models_when_training": check(False, "Move VAE and CLIP to RAM when training if possible. Saves VRAM."),
    "pin_memory": check(False, "Turn on pin_memory for DataLoader. Makes training slightly faster but can increase "
                               "memory usage."),
    "save_optimizer_state": check(False, "Saves Optimizer state as separate *.optim file. Training of embedding or "
                                         "HN can be resumed with the matching optim file."),
    "save_training_settings_to_txt": check(True, "Save textual inversion and hypernet settings to a text file "
                                                 "whenever training starts."),
    "dataset_filename_word_regex": text("", "Filename word regex"),
    "dataset_filename_join_string": text(" ", "Filename join string"),
    "training_image_repeats_per_epoch": number(1, "Number of repeats for a single input image per epoch; used only "
                                                  "for displaying epoch number", precision=0),
    "training_write_csv_every": number(500, "Save an csv containing the loss to log directory every N steps, "
                                            "0 to disable"),
    "training_xattention_optimizations": check(False, "Use cross attention optimizations while training"),
    "training_enable_tensorboard": check(False, "Enable tensorboard logging."),
    "training_tensorboard_save_images": check(False, "Save generated images within tensorboard."),
    "training_tensorboard_flush_every": number(120, "How often, in seconds, to flush the pending tensorboard events "
                                                    "and summaries to disk."),
})

INTERROGATE = section("interrogate", "Interrogate", None, {
    "interrogate_keep_models_in_memory": check(False, "Keep models in VRAM"),
    "interrogate_return_ranks": check(False, "Include ranks of model tags matches in results.", info="booru only"),
    "interrogate_clip_num_beams": slider(1, "BLIP: num_beams", 1, 16, 1),
    "interrogate_clip_min_length": slider(24, "BLIP: minimum description length", 1, 128, 1),
    "interrogate_clip_max_length": slider(48, "BLIP: maximum description length", 1, 256, 1),
    "interrogate_clip_dict_limit": number(1500, "CLIP: maximum number of lines in text file", info="0 = No limit"),
    "interrogate_clip_skip_categories": multi([], "CLIP: skip inquire categories", boxes=True),
    "interrogate_deepbooru_score_threshold": slider(0.5, "deepbooru: score threshold", 0, 1, 0.01),
    "deepbooru_sort_alpha": check(True, "deepbooru: sort tags alphabetically", info="if not: sort by score"),
    "deepbooru_use_spaces": check(True, "deepbooru: use spaces in tags", info="if not: use underscores"),
    "deepbooru_escape": check(True, "deepbooru: escape (\\) brackets",
                              info="so they are used as literal brackets and not for emphasis"),
    "deepbooru_filter_tags": text("", "deepbooru: filter out those tags", info="separate by comma"),
})

POSTPROCESSING = section("postprocessing", "Postprocessing", "postprocessing", {
    "postprocessing_enable_in_main_ui": multi([], "Enable postprocessing operations in txt2img and img2img tabs",
                                              needs_restart=True),
    "postprocessing_disable_in_extras": multi([], "Disable postprocessing operations in extras tab"),
    "postprocessing_operation_order": multi([], "Postprocessing operation order"),
    "upscaling_max_images_in_cache": slider(5, "Maximum number of images in upscaling cache", 0, 10, 1),
    "postprocessing_existing_caption_action": radio("Ignore", "Action for existing captions",
                                                    ["Ignore", "Keep", "Prepend", "Append"]),
})

HIDDEN = section(None, "Hidden options", None, {
    "disabled_extensions": multi([], "Disable these extensions"),
    "disable_all_extensions": radio("none", "Disable all extensions (preserves the list of disabled extensions)",
                                    ["none", "extra", "all"]),
    "restore_config_state_file": text("", "Config state file to restore from, under 'config-states/' folder"),
    "sd_checkpoint_hash": text("", "SHA256 hash of the current checkpoint"),
})

POSTPROCESSING_OPTIONS: list[OptionInfo] = UPSCALING + FACE_RESTORATION
SYSTEM_OPTIONS: list[OptionInfo] = SYSTEM + PROFILER + API + TRAINING
