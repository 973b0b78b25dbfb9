"""Settings of the "Saving images" category: Saving images/grids, Paths for saving, Saving to a directory.

Keys, defaults, labels and component ranges are A1111 1.10's (`modules/shared_options.py`); labels are kept verbatim
because localization files translate them by exact text. The output-directory defaults below are the ones A1111
shows for the default data dir (the install root); `modules.cli.paths.Paths.setting_default_overrides` supplies the
values for another `--data-dir`. `RESTRICTED_KEYS` become read-only with `--hide-ui-dir-config` (A1111
`restricted_opts`).
"""

from __future__ import annotations

from modules.settings.options import OptionInfo, check, color, number, radio, section, slider, text

FILENAME_WIKI = "https://github.com/AUTOMATIC1111/stable-diffusion-webui/wiki/Custom-Images-Filename-Name-and-Subdirectory"

RESTRICTED_KEYS = frozenset({
    "samples_filename_pattern", "directories_filename_pattern", "outdir_samples", "outdir_txt2img_samples",
    "outdir_img2img_samples", "outdir_extras_samples", "outdir_grids", "outdir_txt2img_grids", "outdir_save",
    "outdir_init_images", "temp_dir", "clean_temp_dir_at_start",
})

SAVING_IMAGES: list[OptionInfo] = section("saving-images", "Saving images/grids", "saving", {
    "samples_save": check(True, "Always save all generated images"),
    "samples_format": text("png", "File format for images"),
    "samples_filename_pattern": text("", "Images filename pattern", info=FILENAME_WIKI),
    "save_images_add_number": check(True, "Add number to filename when saving"),
    "save_images_replace_action": radio("Replace", "Saving the image to an existing file",
                                        ["Replace", "Add number suffix"]),
    "grid_save": check(True, "Always save all generated image grids"),
    "grid_format": text("png", "File format for grids"),
    "grid_extended_filename": check(False, "Add extended info (seed, prompt) to filename when saving grid"),
    "grid_only_if_multiple": check(True, "Do not save grids consisting of one picture"),
    "grid_prevent_empty_spots": check(False, "Prevent empty spots in grid (when set to autodetect)"),
    "grid_zip_filename_pattern": text("", "Archive filename pattern", info=FILENAME_WIKI),
    "n_rows": slider(-1, "Grid row count; use -1 for autodetect and 0 for it to be same as batch size", -1, 16, 1),
    "font": text("", "Font for image grids that have text"),
    "grid_text_active_color": color("#000000", "Text color for image grids"),
    "grid_text_inactive_color": color("#999999", "Inactive text color for image grids"),
    "grid_background_color": color("#ffffff", "Background color for image grids"),
    "save_images_before_face_restoration": check(False, "Save a copy of image before doing face restoration."),
    "save_images_before_highres_fix": check(False, "Save a copy of image before applying highres fix."),
    "save_images_before_color_correction": check(
        False, "Save a copy of image before applying color correction to img2img results"),
    "save_mask": check(False, "For inpainting, save a copy of the greyscale mask"),
    "save_mask_composite": check(False, "For inpainting, save a masked composite"),
    "jpeg_quality": slider(80, "Quality for saved jpeg and avif images", 1, 100, 1),
    "webp_lossless": check(False, "Use lossless compression for webp images"),
    "export_for_4chan": check(True, "Save copy of large images as JPG",
                              info="if the file size is above the limit, or either width or height are above the limit"),
    "img_downscale_threshold": number(4.0, "File size limit for the above option, MB"),
    "target_side_length": number(4000, "Width/height limit for the above option, in pixels"),
    "img_max_size_mp": number(200, "Maximum image size", info="in megapixels"),
    "use_original_name_batch": check(True, "Use original name for output filename during batch process in extras tab"),
    "use_upscaler_name_as_suffix": check(False, "Use upscaler name as filename suffix in the extras tab"),
    "save_selected_only": check(True, "When using 'Save' button, only save a single selected image"),
    "save_write_log_csv": check(True, "Write log.csv when saving images using 'Save' button"),
    "save_init_img": check(False, "Save init images when using img2img"),
    "temp_dir": text("", "Directory for temporary images; leave empty for default"),
    "clean_temp_dir_at_start": check(False, "Cleanup non-default temporary directory when starting webui"),
    "save_incomplete_images": check(False, "Save incomplete images",
                                    info="save images that has been interrupted in mid-generation; even if not saved, "
                                         "they will still show up in webui output."),
    "notification_audio": check(True, "Play notification sound after image generation",
                                info="notification.mp3 should be present in the root directory", needs_reload_ui=True),
    "notification_volume": slider(100, "Notification sound volume", 0, 100, 1, info="in %"),
})

SAVING_PATHS: list[OptionInfo] = section("saving-paths", "Paths for saving", "saving", {
    "outdir_samples": text("", "Output directory for images; if empty, defaults to three directories below"),
    "outdir_txt2img_samples": text("outputs/txt2img-images", "Output directory for txt2img images"),
    "outdir_img2img_samples": text("outputs/img2img-images", "Output directory for img2img images"),
    "outdir_extras_samples": text("outputs/extras-images", "Output directory for images from extras tab"),
    "outdir_grids": text("", "Output directory for grids; if empty, defaults to two directories below"),
    "outdir_txt2img_grids": text("outputs/txt2img-grids", "Output directory for txt2img grids"),
    "outdir_img2img_grids": text("outputs/img2img-grids", "Output directory for img2img grids"),
    "outdir_save": text("log/images", "Directory for saving images using the Save button"),
    "outdir_init_images": text("outputs/init-images", "Directory for saving init images when using img2img"),
})

SAVING_TO_DIRS: list[OptionInfo] = section("saving-to-dirs", "Saving to a directory", "saving", {
    "save_to_dirs": check(True, "Save images to a subdirectory"),
    "grid_save_to_dirs": check(True, "Save grids to a subdirectory"),
    "use_save_to_dirs_for_ui": check(False, 'When using "Save" button, save images to a subdirectory'),
    "directories_filename_pattern": text("[date]", "Directory name pattern", info=FILENAME_WIKI),
    "directories_max_prompt_words": slider(8, "Max prompt words for [prompt_words] pattern", 1, 20, 1),
})

OPTIONS: list[OptionInfo] = SAVING_IMAGES + SAVING_PATHS + SAVING_TO_DIRS
