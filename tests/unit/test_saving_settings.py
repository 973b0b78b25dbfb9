"""Saving rules behind settings and flags: `--filenames-max-length` / `--unix-filenames-sanitization` reach the
file names of a job's outputs, and the img2img colour correction keeps luminosity while taking the init colours."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image

from modules.images import FilenameJob
from modules.processing.color_correction import (
    apply_color_correction,
    lab_to_rgb,
    match_channel,
    rgb_to_lab,
    setup_color_correction,
)
from modules.processing.save_outputs import SaveRequest, flag_saving_options, save_outputs


def request(prompt: str) -> SaveRequest:
    return SaveRequest("txt2img", [Image.new("RGB", (8, 8))], ["info"], [7], [prompt], [""], 1, 1,
                       do_not_save_samples=False, do_not_save_grid=True, filename_job=FilenameJob(prompt=prompt))


def test_filename_flags_reach_the_saved_names(tmp_path: Path) -> None:
    prompt = "a: very long prompt " * 20
    flags = SimpleNamespace(filenames_max_length=40, unix_filenames_sanitization=True, no_prompt_history=True)
    ctx = SimpleNamespace(paths=SimpleNamespace(data_dir=tmp_path), flags=flags)
    [short] = save_outputs(ctx, {"save_to_dirs": False}, request(prompt), None)
    assert len(Path(short).stem.removeprefix("00000-7-")) <= 40 and ":" in Path(short).name
    ctx.flags = SimpleNamespace(filenames_max_length=128, unix_filenames_sanitization=False, no_prompt_history=True)
    [longer] = save_outputs(ctx, {"save_to_dirs": False}, request(prompt), None)
    assert len(Path(longer).stem.removeprefix("00001-7-")) > 40 and ":" not in Path(longer).name
    assert flag_saving_options(None) == {}


def test_lab_round_trip_and_histogram_matching() -> None:
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    back = np.asarray(lab_to_rgb(rgb_to_lab(image)), dtype=np.int16)
    assert np.abs(back - np.asarray(image, dtype=np.int16)).max() <= 1
    source = rng.normal(0, 1, 1000)
    matched = match_channel(source, rng.normal(5, 2, 4000))
    assert abs(matched.mean() - 5) < 0.2 and abs(matched.std() - 2) < 0.2
    assert np.all(np.diff(matched[np.argsort(source)]) >= 0)  # order preserved


def test_color_correction_takes_the_init_colours_and_keeps_the_luminosity() -> None:
    rng = np.random.default_rng(2)
    grey = np.clip(rng.normal(128, 30, (32, 32, 1)), 0, 255).repeat(3, axis=2).astype(np.uint8)
    result = Image.fromarray(grey)
    red = Image.new("RGB", (32, 32), (200, 40, 40))
    corrected = np.asarray(apply_color_correction(setup_color_correction(red), result), dtype=np.float64)
    assert corrected[..., 0].mean() > corrected[..., 1].mean() + 40
    luma = corrected @ np.array([0.3, 0.59, 0.11])
    assert np.abs(luma - grey[..., 0]).mean() < 8
