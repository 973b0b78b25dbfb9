"""Settings of the "Stable Diffusion" category: Stable Diffusion, SDXL, VAE, img2img, Optimizations,
Compatibility, Extra Networks, Sampler parameters, plus the built-in Lora and Hypertile extensions' settings.

Keys, defaults, labels, ranges and infotext names are A1111 1.10's (`modules/shared_options.py`,
`extensions-builtin/Lora/scripts/lora_script.py`, `extensions-builtin/hypertile/scripts/hypertile_script.py`).
Dropdowns whose choices are found at run time (checkpoints, VAEs, UNets, attention methods, hypernetworks, Lora,
samplers) are declared without choices and are not validated against a list.

A1111 keys not declared (docs/decisions.md): `enable_batch_seeds` and `ddim_discretize` do nothing in A1111 1.10
either (batch seeds are always per image since 1.6; the DDIM discretization went with the CompVis samplers);
`sd3_enable_t5` (the whole "Stable Diffusion 3" section) belongs to SD3 models, which this app refuses to load.
A config.json that has them keeps them untouched.
"""

from __future__ import annotations

from modules.settings.options import OptionInfo, check, color, dropdown, multi, number, radio, section, slider, text

EMPHASIS_CHOICES = ("None", "Ignore", "Original", "No norm")
"""A1111 `sd_emphasis.options`: None (no emphasis), Ignore (parse, but no weights), Original, No norm."""

SD = section("sd", "Stable Diffusion", "sd", {
    "sd_model_checkpoint": dropdown(None, "Stable Diffusion checkpoint", infotext="Model hash"),
    "sd_checkpoints_limit": slider(1, "Maximum number of checkpoints loaded at the same time", 1, 10, 1),
    "sd_checkpoints_keep_in_cpu": check(True, "Only keep one model on device",
                                        info="will keep models other than the currently used one in RAM rather "
                                             "than VRAM"),
    "sd_checkpoint_cache": slider(0, "Checkpoints to cache in RAM", 0, 10, 1,
                                  info="obsolete; set to 0 and use the two settings above instead"),
    "sd_unet": dropdown("Automatic", "SD Unet",
                        info="choose Unet model: Automatic = use one with same filename as checkpoint; "
                             "None = use Unet from checkpoint"),
    "enable_quantization": check(False, "Enable quantization in K samplers for sharper and cleaner results. "
                                        "This may change existing seeds", needs_reload_ui=True),
    "emphasis": radio("Original", "Emphasis mode", EMPHASIS_CHOICES, infotext="Emphasis"),
    "comma_padding_backtrack": slider(20, "Prompt word wrap length limit", 0, 74, 1,
                                      info="in tokens - for texts shorter than specified, if they don't fit into 75 "
                                           "token limit, move them to the next 75 token chunk"),
    "sdxl_clip_l_skip": check(False, "Clip skip SDXL", info="Enable Clip skip for the secondary clip model in sdxl. "
                                                            "Has no effect on SD 1.5 or SD 2.0/2.1."),
    "CLIP_stop_at_last_layers": slider(1, "Clip skip", 1, 12, 1, infotext="Clip skip",
                                       info="ignore last layers of CLIP network; 1 ignores none, 2 ignores one layer"),
    "upcast_attn": check(False, "Upcast cross attention layer to float32"),
    "randn_source": radio("GPU", "Random number generator source.", ["GPU", "CPU", "NV"], infotext="RNG",
                          info="changes seeds drastically; use CPU to produce the same picture across different "
                               "videocard vendors; use NV to produce same picture as on NVidia videocards"),
    "tiling": check(False, "Tiling", infotext="Tiling", info="produce a tileable picture"),
    "hires_fix_refiner_pass": radio("second pass", "Hires fix: which pass to enable refiner for",
                                    ["first pass", "second pass", "both passes"], infotext="Hires refiner"),
    "enable_prompt_comments": check(True, "Enable comments",
                                    info="Use # anywhere in the prompt to hide the text between # and the end of "
                                         "the line from the generation."),
})

SDXL = section("sdxl", "Stable Diffusion XL", "sd", {
    "sdxl_crop_top": number(0, "crop top coordinate"),
    "sdxl_crop_left": number(0, "crop left coordinate"),
    "sdxl_refiner_low_aesthetic_score": number(2.5, "SDXL low aesthetic score",
                                               info="used for refiner model negative prompt"),
    "sdxl_refiner_high_aesthetic_score": number(6.0, "SDXL high aesthetic score", info="used for refiner model prompt"),
})

VAE = section("vae", "VAE", "sd", {
    "sd_vae_checkpoint_cache": slider(0, "VAE Checkpoints to cache in RAM", 0, 10, 1),
    "sd_vae": dropdown("Automatic", "SD VAE", infotext="VAE",
                       info="choose VAE model: Automatic = use one with same filename as checkpoint; "
                            "None = use VAE from checkpoint"),
    "sd_vae_overrides_per_model_preferences": check(True, "Selected VAE overrides per-model preferences"),
    "auto_vae_precision_bfloat16": check(False, "Automatically convert VAE to bfloat16"),
    "auto_vae_precision": check(True, "Automatically revert VAE to 32-bit floats",
                                info="triggers when a tensor with NaNs is produced in VAE; disabling the option in "
                                     "this case will result in a black square image"),
    "sd_vae_encode_method": radio("Full", "VAE type for encode", ["Full", "TAESD"], infotext="VAE Encoder"),
    "sd_vae_decode_method": radio("Full", "VAE type for decode", ["Full", "TAESD"], infotext="VAE Decoder"),
})

IMG2IMG = section("img2img", "img2img", "sd", {
    "inpainting_mask_weight": slider(1.0, "Inpainting conditioning mask strength", 0.0, 1.0, 0.01,
                                     infotext="Conditional mask weight"),
    "initial_noise_multiplier": slider(1.0, "Noise multiplier for img2img", 0.0, 1.5, 0.001,
                                       infotext="Noise multiplier"),
    "img2img_extra_noise": slider(0.0, "Extra noise multiplier for img2img and hires fix", 0.0, 1.0, 0.01,
                                  infotext="Extra noise"),
    "img2img_color_correction": check(False, "Apply color correction to img2img results to match original colors."),
    "img2img_fix_steps": check(False, "With img2img, do exactly the amount of steps the slider specifies."),
    "img2img_background_color": color("#ffffff", "With img2img, fill transparent parts of the input image with this "
                                                 "color."),
    "img2img_editor_height": slider(720, "Height of the image editor", 80, 1600, 1, info="in pixels",
                                    needs_reload_ui=True),
    "img2img_sketch_default_brush_color": color("#ffffff", "Sketch initial brush color", needs_reload_ui=True),
    "img2img_inpaint_mask_brush_color": color("#ffffff", "Inpaint mask brush color", needs_reload_ui=True),
    "img2img_inpaint_sketch_default_brush_color": color("#ffffff", "Inpaint sketch initial brush color",
                                                       needs_reload_ui=True),
    "img2img_inpaint_mask_high_contrast": check(True, "For inpainting, use a high-contrast brush pattern",
                                                needs_reload_ui=True),
    "return_mask": check(False, "For inpainting, include the greyscale mask in results for web"),
    "return_mask_composite": check(False, "For inpainting, include masked composite in results for web"),
    "img2img_batch_show_results_limit": slider(32, "Show the first N batch img2img results in UI", -1, 1000, 1,
                                               info="0: disable, -1: show all images. Too many images can cause lag"),
    "overlay_inpaint": check(True, "Overlay original for inpaint"),
    "img2img_autosize": check(False, "After loading into Img2img, automatically update Width and Height"),
    "img2img_batch_use_original_name": check(False, "Save using original filename in img2img batch. Applies to "
                                                    "'Upload' and 'From directory' tabs."),
})

OPTIMIZATIONS = section("optimizations", "Optimizations", "sd", {
    "cross_attention_optimization": dropdown("Automatic", "Cross attention optimization"),
    "s_min_uncond": slider(0.0, "Negative Guidance minimum sigma", 0.0, 15.0, 0.01, infotext="NGMS"),
    "s_min_uncond_all": check(False, "Negative Guidance minimum sigma all steps", infotext="NGMS all steps"),
    "token_merging_ratio": slider(0.0, "Token merging ratio", 0.0, 0.9, 0.1, infotext="Token merging ratio"),
    "token_merging_ratio_img2img": slider(0.0, "Token merging ratio for img2img", 0.0, 0.9, 0.1),
    "token_merging_ratio_hr": slider(0.0, "Token merging ratio for high-res pass", 0.0, 0.9, 0.1,
                                     infotext="Token merging ratio hr"),
    "pad_cond_uncond": check(False, "Pad prompt/negative prompt", infotext="Pad conds"),
    "pad_cond_uncond_v0": check(False, "Pad prompt/negative prompt (v0)", infotext="Pad conds v0"),
    "persistent_cond_cache": check(True, "Persistent cond cache"),
    "batch_cond_uncond": check(True, "Batch cond/uncond"),
    "fp8_storage": radio("Disable", "FP8 weight", ["Disable", "Enable for SDXL", "Enable"]),
    "cache_fp16_weight": check(False, "Cache FP16 weight for LoRA"),
})

COMPATIBILITY = section("compatibility", "Compatibility", "sd", {
    "auto_backcompat": check(True, "Automatic backward compatibility"),
    "use_old_emphasis_implementation": check(False, "Use old emphasis implementation. Can be useful to reproduce old "
                                                    "seeds."),
    "use_old_karras_scheduler_sigmas": check(False, "Use old karras scheduler sigmas (0.1 to 10)."),
    "no_dpmpp_sde_batch_determinism": check(False, "Do not make DPM++ SDE deterministic across different batch "
                                                   "sizes."),
    "use_old_hires_fix_width_height": check(False, "For hires fix, use width/height sliders to set final resolution "
                                                   "rather than first pass (disables Upscale by, Resize width/height "
                                                   "to)."),
    "hires_fix_use_firstpass_conds": check(False, "For hires fix, calculate conds of second pass using extra "
                                                  "networks of first pass."),
    "use_old_scheduling": check(False, "Use old prompt editing timelines.", infotext="Old prompt editing timelines"),
    "use_downcasted_alpha_bar": check(False, "Downcast model alphas_cumprod to fp16 before sampling. For reproducing "
                                             "old seeds.", infotext="Downcast alphas_cumprod"),
    "refiner_switch_by_sample_steps": check(False, "Switch to refiner by sampling steps instead of model timesteps. "
                                                   "Old behavior for refiner.",
                                            infotext="Refiner switch by sampling steps"),
    "lora_functional": check(False, "Lora/Networks: use old method that takes longer when you have multiple Loras "
                                    "active and produces same results as kohya-ss/sd-webui-additional-networks "
                                    "extension"),
})

EXTRA_NETWORKS = section("extra_networks", "Extra Networks", "sd", {
    "extra_networks_show_hidden_directories": check(True, "Show hidden directories"),
    "extra_networks_dir_button_function": check(False, "Add a '/' to the beginning of directory buttons"),
    "extra_networks_hidden_models": radio("When searched", "Show cards for models in hidden directories",
                                          ["Always", "When searched", "Never"]),
    "extra_networks_default_multiplier": slider(1.0, "Default multiplier for extra networks", 0.0, 2.0, 0.01),
    "extra_networks_card_width": number(0, "Card width for Extra Networks", info="in pixels"),
    "extra_networks_card_height": number(0, "Card height for Extra Networks", info="in pixels"),
    "extra_networks_card_text_scale": slider(1.0, "Card text scale", 0.0, 2.0, 0.01, info="1 = original size"),
    "extra_networks_card_show_desc": check(True, "Show description on card"),
    "extra_networks_card_description_is_html": check(False, "Treat card description as HTML"),
    "extra_networks_card_order_field": dropdown("Path", "Default order field for Extra Networks cards",
                                                ["Path", "Name", "Date Created", "Date Modified"],
                                                needs_reload_ui=True),
    "extra_networks_card_order": dropdown("Ascending", "Default order for Extra Networks cards",
                                          ["Ascending", "Descending"], needs_reload_ui=True),
    "extra_networks_tree_view_style": radio("Dirs", "Extra Networks directory view style", ["Tree", "Dirs"],
                                            needs_reload_ui=True),
    "extra_networks_tree_view_default_enabled": check(True, "Show the Extra Networks directory view by default",
                                                      needs_reload_ui=True),
    "extra_networks_tree_view_default_width": number(180, "Default width for the Extra Networks directory tree view",
                                                     needs_reload_ui=True),
    "extra_networks_add_text_separator": text(" ", "Extra networks separator",
                                              info="extra text to add before <...> when adding extra network to "
                                                   "prompt"),
    "ui_extra_networks_tab_reorder": text("", "Extra networks tab order", needs_reload_ui=True),
    "textual_inversion_print_at_load": check(False, "Print a list of Textual Inversion embeddings when loading model"),
    "textual_inversion_add_hashes_to_infotext": check(True, "Add Textual Inversion hashes to infotext"),
    "sd_hypernetwork": dropdown("None", "Add hypernetwork to prompt"),
    # built-in Lora extension
    "sd_lora": dropdown("None", "Add network to prompt"),
    "lora_preferred_name": radio("Alias from file", "When adding to prompt, refer to Lora by",
                                 ["Alias from file", "Filename"]),
    "lora_add_hashes_to_infotext": check(True, "Add Lora hashes to infotext"),
    "lora_bundled_ti_to_infotext": check(True, "Add Lora name as TI hashes for bundled Textual Inversion"),
    "lora_show_all": check(False, "Always show all networks on the Lora page",
                           info="otherwise, those detected as for incompatible version of Stable Diffusion will be "
                                "hidden"),
    "lora_hide_unknown_for_versions": multi([], "Hide networks of unknown versions for model versions",
                                            ["SD1", "SD2", "SDXL"], boxes=True),
    "lora_in_memory_limit": number(0, "Number of Lora networks to keep cached in memory", precision=0),
    "lora_not_found_warning_console": check(False, "Lora not found warning in console"),
    "lora_not_found_gradio_warning": check(False, "Lora not found warning popup in webui"),
})

SAMPLER_PARAMS = section("sampler-params", "Sampler parameters", "sd", {
    "hide_samplers": multi([], "Hide samplers in user interface", boxes=True, needs_reload_ui=True),
    "eta_ddim": slider(0.0, "Eta for DDIM", 0.0, 1.0, 0.01, infotext="Eta DDIM",
                       info="noise multiplier; higher = more unpredictable results"),
    "eta_ancestral": slider(1.0, "Eta for k-diffusion samplers", 0.0, 1.0, 0.01, infotext="Eta",
                            info="noise multiplier; currently only applies to ancestral samplers (i.e. Euler a) and "
                                 "SDE samplers"),
    "s_churn": slider(0.0, "sigma churn", 0.0, 100.0, 0.01, infotext="Sigma churn",
                      info="amount of stochasticity; only applies to Euler, Heun, and DPM2"),
    "s_tmin": slider(0.0, "sigma tmin", 0.0, 10.0, 0.01, infotext="Sigma tmin",
                     info="enable stochasticity; start value of the sigma range; only applies to Euler, Heun, and "
                          "DPM2"),
    "s_tmax": slider(0.0, "sigma tmax", 0.0, 999.0, 0.01, infotext="Sigma tmax",
                     info="0 = inf; end value of the sigma range; only applies to Euler, Heun, and DPM2"),
    "s_noise": slider(1.0, "sigma noise", 0.0, 1.1, 0.001, infotext="Sigma noise",
                      info="amount of additional noise to counteract loss of detail during sampling"),
    "sigma_min": slider(0.0, "sigma min", 0.0, 2.0, 0.001, infotext="Schedule min sigma",
                        info="0 = default (~0.03); minimum noise strength for k-diffusion noise scheduler"),
    "sigma_max": slider(0.0, "sigma max", 0.0, 60.0, 0.001, infotext="Schedule max sigma",
                        info="0 = default (~14.6); maximum noise strength for k-diffusion noise scheduler"),
    "rho": number(0.0, "rho", infotext="Schedule rho",
                  info="0 = default (7 for karras, 1 for polyexponential); higher values result in a steeper noise "
                       "schedule (decreases faster)"),
    "eta_noise_seed_delta": number(0, "Eta noise seed delta", precision=0, infotext="ENSD",
                                   info="ENSD; does not improve anything, just produces different results for "
                                        "ancestral samplers - only useful for reproducing images"),
    "always_discard_next_to_last_sigma": check(False, "Always discard next-to-last sigma",
                                               infotext="Discard penultimate sigma"),
    "sgm_noise_multiplier": check(False, "SGM noise multiplier", infotext="SGM noise multiplier",
                                  info="Match initial noise to official SDXL implementation - only useful for "
                                       "reproducing images"),
    "uni_pc_variant": radio("bh1", "UniPC variant", ["bh1", "bh2", "vary_coeff"], infotext="UniPC variant"),
    "uni_pc_skip_type": radio("time_uniform", "UniPC skip type", ["time_uniform", "time_quadratic", "logSNR"],
                              infotext="UniPC skip type"),
    "uni_pc_order": slider(3, "UniPC order", 1, 50, 1, infotext="UniPC order", info="must be < sampling steps"),
    "uni_pc_lower_order_final": check(True, "UniPC lower order final", infotext="UniPC lower order final"),
    "sd_noise_schedule": radio("Default", "Noise schedule for sampling", ["Default", "Zero Terminal SNR"],
                               infotext="Noise Schedule", info="for use with zero terminal SNR trained models"),
    "skip_early_cond": slider(0.0, "Ignore negative prompt during early sampling", 0.0, 1.0, 0.01,
                              infotext="Skip Early CFG"),
    "beta_dist_alpha": slider(0.6, "Beta scheduler - alpha", 0.01, 1.0, 0.01, infotext="Beta scheduler alpha"),
    "beta_dist_beta": slider(0.6, "Beta scheduler - beta", 0.01, 1.0, 0.01, infotext="Beta scheduler beta"),
})

HYPERTILE = section("hypertile", "Hypertile", "sd", {
    "hypertile_enable_unet": check(False, "Enable Hypertile U-Net", infotext="Hypertile U-Net"),
    "hypertile_enable_unet_secondpass": check(False, "Enable Hypertile U-Net for hires fix second pass",
                                              infotext="Hypertile U-Net second pass"),
    "hypertile_max_depth_unet": slider(3, "Hypertile U-Net max depth", 0, 3, 1, infotext="Hypertile U-Net max depth"),
    "hypertile_max_tile_unet": slider(256, "Hypertile U-Net max tile size", 0, 512, 16,
                                      infotext="Hypertile U-Net max tile size"),
    "hypertile_swap_size_unet": slider(3, "Hypertile U-Net swap size", 0, 64, 1, infotext="Hypertile U-Net swap size"),
    "hypertile_enable_vae": check(False, "Enable Hypertile VAE", infotext="Hypertile VAE"),
    "hypertile_max_depth_vae": slider(3, "Hypertile VAE max depth", 0, 3, 1, infotext="Hypertile VAE max depth"),
    "hypertile_max_tile_vae": slider(128, "Hypertile VAE max tile size", 0, 512, 16,
                                     infotext="Hypertile VAE max tile size"),
    "hypertile_swap_size_vae": slider(3, "Hypertile VAE swap size ", 0, 64, 1, infotext="Hypertile VAE swap size"),
})

SD_OPTIONS: list[OptionInfo] = SD + SDXL + VAE + IMG2IMG + OPTIMIZATIONS + COMPATIBILITY
