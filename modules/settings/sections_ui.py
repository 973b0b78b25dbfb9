"""Settings of the "User Interface" category: Prompt editing, Gallery, UI alternatives, User interface, Infotext,
Live previews, Settings in UI, plus the built-in canvas-zoom extension's hotkeys.

Keys, defaults, labels and ranges are A1111 1.10's (`modules/shared_options.py`,
`extensions-builtin/canvas-zoom-and-pan/scripts/hotkey_config.py`). A1111 gives both "User interface" and
"Live previews" the section id "ui"; that is kept (a section is identified by id and label together).
`quicksettings_list` defaults to `["sd_model_checkpoint"]`.
"""

from __future__ import annotations

from modules.settings.options import OptionInfo, check, dropdown, multi, number, radio, section, slider, text

PROMPT_EDITING = section("ui_prompt_editing", "Prompt editing", "ui", {
    "keyedit_precision_attention": slider(0.1, "Precision for (attention:1.1) when editing the prompt with "
                                               "Ctrl+up/down", 0.01, 0.2, 0.001),
    "keyedit_precision_extra": slider(0.05, "Precision for <extra networks:0.9> when editing the prompt with "
                                            "Ctrl+up/down", 0.01, 0.2, 0.001),
    "keyedit_delimiters": text(".,\\/!?%^*;:{}=`~() ", "Word delimiters when editing the prompt with Ctrl+up/down"),
    "keyedit_delimiters_whitespace": multi(["Tab", "Carriage Return", "Line Feed"],
                                           "Ctrl+up/down whitespace delimiters",
                                           ["Tab", "Carriage Return", "Line Feed"], boxes=True),
    "keyedit_move": check(True, "Alt+left/right moves prompt elements"),
    "disable_token_counters": check(False, "Disable prompt token counters"),
    "include_styles_into_token_counters": check(True, "Count tokens of enabled styles"),
})

GALLERY = section("ui_gallery", "Gallery", "ui", {
    "return_grid": check(True, "Show grid in gallery"),
    "do_not_show_images": check(False, "Do not show any images in gallery"),
    "js_modal_lightbox": check(True, "Full page image viewer: enable"),
    "js_modal_lightbox_initially_zoomed": check(True, "Full page image viewer: show images zoomed in by default"),
    "js_modal_lightbox_gamepad": check(False, "Full page image viewer: navigate with gamepad"),
    "js_modal_lightbox_gamepad_repeat": number(250, "Full page image viewer: gamepad repeat period",
                                               info="in milliseconds"),
    "sd_webui_modal_lightbox_icon_opacity": slider(1.0, "Full page image viewer: control icon unfocused opacity",
                                                   0.0, 1.0, 0.01, info="for mouse only", needs_reload_ui=True),
    "sd_webui_modal_lightbox_toolbar_opacity": slider(0.9, "Full page image viewer: tool bar opacity", 0.0, 1.0, 0.01,
                                                      info="for mouse only", needs_reload_ui=True),
    "gallery_height": text("", "Gallery height", info="can be any valid CSS value, for example 768px or 20em",
                           needs_reload_ui=True),
    "open_dir_button_choice": radio("Subdirectory", "What directory the [📂] button opens",
                                    ["Output Root", "Subdirectory", "Subdirectory (even temp dir)"]),
    "hires_button_gallery_insert": check(False, "Insert [✨] hires button results into gallery",
                                         info="Default: original image will be replaced"),
})

UI_ALTERNATIVES = section("ui_alternatives", "UI alternatives", "ui", {
    "compact_prompt_box": check(False, "Compact prompt layout", needs_reload_ui=True),
    "samplers_in_dropdown": check(True, "Use dropdown for sampler selection instead of radio group",
                                  needs_reload_ui=True),
    "dimensions_and_batch_together": check(True, "Show Width/Height and Batch sliders in same row",
                                           needs_reload_ui=True),
    "sd_checkpoint_dropdown_use_short": check(False, "Checkpoint dropdown: use filenames without paths"),
    "hires_fix_show_sampler": check(False, "Hires fix: show hires checkpoint and sampler selection",
                                    needs_reload_ui=True),
    "hires_fix_show_prompts": check(False, "Hires fix: show hires prompt and negative prompt", needs_reload_ui=True),
    "txt2img_settings_accordion": check(False, "Settings in txt2img hidden under Accordion", needs_reload_ui=True),
    "img2img_settings_accordion": check(False, "Settings in img2img hidden under Accordion", needs_reload_ui=True),
    "interrupt_after_current": check(True, "Don't Interrupt in the middle",
                                     info="when using Interrupt button, if generating more than one image, stop after "
                                          "the generation of an image has finished, instead of immediately"),
})

USER_INTERFACE = section("ui", "User interface", "ui", {
    "localization": dropdown("None", "Localization", needs_reload_ui=True),
    "quicksettings_list": multi(["sd_model_checkpoint"], "Quicksettings list",
                                info="setting entries that appear at the top of page rather than in settings tab",
                                needs_reload_ui=True),
    "ui_tab_order": multi([], "UI tab order", needs_reload_ui=True),
    "hidden_tabs": multi([], "Hidden UI tabs", needs_reload_ui=True),
    "ui_reorder_list": multi([], "UI item order for txt2img/img2img tabs", info="selected items appear first",
                             needs_reload_ui=True),
    "gradio_theme": dropdown("Default", "Gradio theme", editable=True, needs_reload_ui=True,
                             info="hub themes need internet access; offline only Gradio's built-in themes "
                                  "(gradio/soft, Ocean, ...) and themes cached in tmp/gradio_themes load"),
    "gradio_themes_cache": check(True, "Cache gradio themes locally", info="disable to update the selected Gradio theme"),
    "show_progress_in_title": check(True, "Show generation progress in window title."),
    "send_seed": check(True, "Send seed when sending prompt or image to other interface"),
    "send_size": check(True, "Send size when sending prompt or image to another interface"),
    "enable_reloading_ui_scripts": check(False, "Reload UI scripts when using Reload UI option"),
})

INFOTEXT = section("infotext", "Infotext", "ui", {
    "enable_pnginfo": check(True, "Write infotext to metadata of the generated image"),
    "save_txt": check(False, "Create a text file with infotext next to every generated image"),
    "add_model_name_to_info": check(True, "Add model name to infotext"),
    "add_model_hash_to_info": check(True, "Add model hash to infotext"),
    "add_vae_name_to_info": check(True, "Add VAE name to infotext"),
    "add_vae_hash_to_info": check(True, "Add VAE hash to infotext"),
    "add_user_name_to_info": check(False, "Add user name to infotext when authenticated"),
    "add_version_to_infotext": check(True, "Add program version to infotext"),
    "disable_weights_auto_swap": check(True, "Disregard checkpoint information from pasted infotext",
                                       info="when reading generation parameters from text into UI"),
    "infotext_skip_pasting": multi([], "Disregard fields from pasted infotext"),
    "infotext_styles": radio("Apply if any", "Infer styles from prompts of pasted infotext",
                             ["Ignore", "Apply", "Discard", "Apply if any"]),
})

LIVE_PREVIEWS = section("ui", "Live previews", "ui", {
    "show_progressbar": check(True, "Show progressbar"),
    "live_previews_enable": check(True, "Show live previews of the created image"),
    "live_previews_image_format": radio("png", "Live preview file format", ["jpeg", "png", "webp"]),
    "show_progress_grid": check(True, "Show previews of all images generated in a batch as a grid"),
    "show_progress_every_n_steps": slider(10, "Live preview display period", -1, 32, 1,
                                          info="in sampling steps - show new live preview image every N sampling "
                                               "steps; -1 = only show after completion of batch"),
    "show_progress_type": radio("Approx NN", "Live preview method", ["Full", "Approx NN", "Approx cheap", "TAESD"]),
    "live_preview_allow_lowvram_full": check(False, "Allow Full live preview method with lowvram/medvram"),
    "live_preview_content": radio("Prompt", "Live preview subject", ["Combined", "Prompt", "Negative prompt"]),
    "live_preview_refresh_period": number(1000, "Progressbar and preview update period", info="in milliseconds"),
    "live_preview_fast_interrupt": check(False, "Return image with chosen live preview method on interrupt",
                                         info="makes interrupts faster"),
    "js_live_preview_in_modal_lightbox": check(False, "Show Live preview in full page image viewer"),
    "prevent_screen_sleep_during_generation": check(True, "Prevent screen sleep during generation"),
})

SETTINGS_IN_UI = section("settings_in_ui", "Settings in UI", "ui", {
    "extra_options_txt2img": multi([], "Settings for txt2img", info="setting entries that also appear in txt2img "
                                                                    "interfaces", needs_reload_ui=True),
    "extra_options_img2img": multi([], "Settings for img2img", info="setting entries that also appear in img2img "
                                                                    "interfaces", needs_reload_ui=True),
    "extra_options_cols": slider(1, "Number of columns for added settings", 1, 20, 1, needs_reload_ui=True),
    "extra_options_accordion": check(False, "Place added settings into an accordion", needs_reload_ui=True),
})

_KEYS = ["Shift", "Ctrl", "Alt"]
CANVAS_HOTKEYS = section("canvas_hotkey", "Canvas Hotkeys", None, {
    "canvas_hotkey_zoom": radio("Alt", "Zoom canvas", _KEYS),
    "canvas_hotkey_adjust": radio("Ctrl", "Adjust brush size", _KEYS),
    "canvas_hotkey_shrink_brush": text("Q", "Shrink the brush size"),
    "canvas_hotkey_grow_brush": text("W", "Enlarge the brush size"),
    "canvas_hotkey_move": text("F", "Moving the canvas"),
    "canvas_hotkey_fullscreen": text("S", "Fullscreen Mode, maximizes the picture so that it fits into the screen "
                                          "and stretches it to its full width "),
    "canvas_hotkey_reset": text("R", "Reset zoom and canvas position"),
    "canvas_hotkey_overlap": text("O", "Toggle overlap"),
    "canvas_show_tooltip": check(True, "Enable tooltip on the canvas"),
    "canvas_auto_expand": check(True, "Automatically expands an image that does not fit completely in the canvas "
                                      "area, similar to manually pressing the S and R buttons"),
    "canvas_blur_prompt": check(False, "Take the focus off the prompt when working with a canvas"),
    "canvas_disabled_functions": multi(["Overlap"], "Disable function that you don't use",
                                       ["Zoom", "Adjust brush size", "Hotkey enlarge brush", "Hotkey shrink brush",
                                        "Moving canvas", "Fullscreen", "Reset Zoom", "Overlap"], boxes=True),
})

UI_OPTIONS: list[OptionInfo] = PROMPT_EDITING + GALLERY + UI_ALTERNATIVES + USER_INTERFACE + INFOTEXT
