"""Built-in scripts other than X/Y/Z: their pure logic and a run each with a stand-in pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from modules.extensions import builtin_logic as bl
from modules.extensions.api import CallbackRegistry, ScriptRunner
from modules.processing.context import GenerationResult
from modules.processing.params import Img2ImgParams, Txt2ImgParams

ROOT = Path(__file__).resolve().parents[2]


def test_prompt_matrix_combinations_in_a1111_order() -> None:
    assert bl.prompt_matrix_prompts("a cat | red | hat") == ["a cat", "a cat, red", "a cat, hat", "a cat, red, hat"]
    assert bl.prompt_matrix_prompts("cat|red", put_at_start=True, delimiter=" ") == ["cat", "red cat"]
    assert bl.prompt_matrix_rows(3) == 2 and bl.prompt_matrix_rows(4) == 2 and bl.prompt_matrix_rows(5) == 4


def test_prompt_lines() -> None:
    assert bl.parse_prompt_line("just a cat") == {"prompt": "just a cat"}
    parsed = bl.parse_prompt_line('--prompt a red cat --negative_prompt "blurry, bad" --steps 12 --cfg_scale 4.5 '
                                  '--width 256 --restore_faces true --styles "s1, s2" --sd_model m.safetensors')
    assert parsed == {"prompt": "a red cat", "negative_prompt": "blurry, bad", "steps": 12, "cfg_scale": 4.5,
                      "width": 256, "restore_faces": True, "styles": ["s1", "s2"], "sd_model": "m.safetensors"}
    with pytest.raises(bl.ScriptInputError, match="unknown option --bogus"):
        bl.parse_prompt_line("--bogus 1")
    with pytest.raises(bl.ScriptInputError, match="bad value 'x' for --steps"):
        bl.parse_prompt_line("--steps x")
    assert len(bl.parse_prompt_lines("a\n\n  b \n")) == 2
    assert bl.combine_prompt("cat", "photo", "start") == "cat photo"
    assert bl.combine_prompt("cat", "photo", "end") == "photo cat"


def test_loopback_curves() -> None:
    assert bl.loopback_strength(0, 4, 0.8, 0.2, "Linear") == pytest.approx(0.8)
    assert bl.loopback_strength(3, 4, 0.8, 0.2, "Lazy") == pytest.approx(0.2)
    assert bl.loopback_strength(1, 3, 0.0, 1.0, "Aggressive") == pytest.approx(np.sin(np.pi / 4))
    assert bl.loopback_strength(1, 3, 0.0, 1.0, "Lazy") == pytest.approx(1 - np.cos(np.pi / 4))
    assert bl.loopback_strength(5, 1, 0.7, 0.1, "Linear") == 0.7


def test_tiles_round_trip() -> None:
    assert bl.tile_positions(512, 512, 64) == [0]
    assert bl.tile_positions(1024, 512, 64) == [0, 256, 512]
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (300, 500, 3), dtype=np.uint8))
    rows = bl.split_tiles(image, 128, 128, 32)
    assert all(t.image.size == (128, 128) for row in rows for t in row)
    assert np.array_equal(np.asarray(bl.combine_tiles(rows, 500, 300, 32)), np.asarray(image))


def test_outpaint_canvas_and_noise_fill() -> None:
    image = Image.new("RGB", (64, 32), (200, 10, 10))
    canvas, mask = bl.outpaint_canvas(image, 16, ["left", "down"], mask_blur=4)
    assert canvas.size == (80, 48) and mask.size == (80, 48)
    assert canvas.getpixel((0, 0)) == (200, 10, 10)  # edge stretched
    assert mask.getpixel((0, 0)) == 255 and mask.getpixel((30, 10)) == 0 and mask.getpixel((17, 10)) == 255
    filled = bl.matched_noise_fill(canvas, mask, seed=1)
    assert filled.getpixel((30, 10)) == (200, 10, 10)
    with pytest.raises(bl.ScriptInputError, match="direction"):
        bl.outpaint_canvas(image, 16, ["sideways"])


def _runner(img2img: bool) -> ScriptRunner:
    r = ScriptRunner(is_img2img=img2img, callbacks=CallbackRegistry())
    r.load(ROOT)
    assert not r.load_errors, r.load_errors
    return r


def fake_pipeline(calls: list[Any]) -> Any:
    def run(p: Any) -> GenerationResult:
        calls.append(p)
        if getattr(p, "init_images", None):
            images = [im.convert("RGB").resize((p.width, p.height)) for im in p.init_images]
        else:
            images = [Image.new("RGB", (p.width, p.height), (len(p.prompt) * 9 % 256, 0, 0))] * p.batch_size
        return GenerationResult(images=images, infotexts=[f"{p.prompt}\nSeed: {p.seed}"] * len(images),
                                all_prompts=[p.prompt] * len(images), all_negative_prompts=[p.negative_prompt],
                                all_seeds=[p.seed] * len(images), all_subseeds=[-1])
    return run


def test_builtin_titles() -> None:
    assert _runner(False).titles() == ["Prompt matrix", "Prompts from file or textbox", "X/Y/Z plot"]
    assert _runner(True).titles() == ["img2img alternative test", "Loopback", "Outpainting mk2", "Poor man's outpainting", "Prompt matrix",
                                      "Prompts from file or textbox", "SD upscale", "X/Y/Z plot"]


def test_prompt_matrix_script() -> None:
    calls: list[Any] = []
    p = Txt2ImgParams(prompt="cat|red|hat", width=64, height=64, seed=10, script_name="Prompt matrix",
                      script_args={"different_seeds": True})
    result = _runner(False).run(p, process_images=fake_pipeline(calls))
    assert [c.prompt for c in calls] == ["cat", "cat, red", "cat, hat", "cat, red, hat"]
    assert [c.seed for c in calls] == [10, 11, 12, 13]
    assert result.index_of_first_image == 1 and len(result.images) == 5
    assert result.images[0].width > 128  # 2x2 grid with legends


def test_prompts_from_file_script() -> None:
    calls: list[Any] = []
    p = Txt2ImgParams(prompt="photo", width=64, height=64, seed=7, script_name="Prompts from file or textbox",
                      script_args=[True, False, "end", "a cat\n--prompt a dog --steps 3 --sd_model other.ckpt\n"])
    result = _runner(False).run(p, process_images=fake_pipeline(calls))
    assert [(c.prompt, c.seed) for c in calls] == [("photo a cat", 7), ("photo a dog", 8)]
    assert calls[1].steps == 3 and calls[1].override_settings == {"sd_model_checkpoint": "other.ckpt"}
    assert len(result.images) == 2


def test_loopback_script() -> None:
    calls: list[Any] = []
    p = Img2ImgParams(init_images=[Image.new("RGB", (64, 64))], width=64, height=64, seed=3, denoising_strength=0.8,
                      script_name="Loopback", script_args=[3, 0.2, "Linear"])
    result = _runner(True).run(p, process_images=fake_pipeline(calls))
    assert [c.seed for c in calls] == [3, 4, 5]
    assert [round(c.denoising_strength, 3) for c in calls] == [0.8, 0.5, 0.2]
    assert calls[1].init_images[0] is not p.init_images[0] and calls[1].inpainting_fill == 1
    assert result.index_of_first_image == 1 and len(result.images) == 4


def test_sd_upscale_script() -> None:
    calls: list[Any] = []
    source = Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8))
    p = Img2ImgParams(init_images=[source], width=128, height=128, seed=1, batch_size=2, script_name="SD upscale",
                      script_args=["", 32, "Lanczos", 2.0])
    result = _runner(True).run(p, process_images=fake_pipeline(calls))
    assert result.images[0].size == (192, 192)
    assert sum(len(c.init_images) for c in calls) == 4 and [c.seed for c in calls] == [1, 2]
    expected = source.resize((192, 192), Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(result.images[0]), np.asarray(expected))  # identity pipeline → same image


def test_outpainting_scripts() -> None:
    calls: list[Any] = []
    p = Img2ImgParams(init_images=[Image.new("RGB", (64, 64), (0, 90, 0))], width=64, height=64, seed=2,
                      script_name="Poor man's outpainting", script_args=[32, 4, "fill", ["right"]])
    result = _runner(True).run(p, process_images=fake_pipeline(calls))
    assert result.images[0].size == (96, 64) and calls and calls[0].mask is not None
    calls.clear()
    p.script_name, p.script_args = "Outpainting mk2", ["", 16, 8, ["up", "left"], 1.0, 0.05]
    result = _runner(True).run(p, process_images=fake_pipeline(calls))
    assert (calls[0].width, calls[0].height) == (80, 80) and calls[0].inpainting_fill == 1
    assert calls[0].init_images[0].size == (80, 80)
