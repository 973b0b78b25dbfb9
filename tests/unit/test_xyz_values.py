"""X/Y/Z plot: range syntax, seeds, axis application to a params copy, cell order."""

from __future__ import annotations

import random

import pytest

from modules.extensions import xyz
from modules.extensions.api import copy_params
from modules.processing.params import Img2ImgParams, Txt2ImgParams


@pytest.mark.parametrize(("text", "expected"), [
    ("1-5", [1, 2, 3, 4, 5]),
    ("1-5 (+2)", [1, 3, 5]),
    ("10-5 (-3)", [10, 7]),
    ("10-1 (-3)", [10, 7, 4, 1]),
    ("5-1", [5, 4, 3, 2, 1]),
    ("1-10 [5]", [1, 3, 5, 7, 10]),
    ("1, 2, 10-12", [1, 2, 10, 11, 12]),
    ("-1, 3", [-1, 3]),
    ("", []),
])
def test_int_ranges(text: str, expected: list[int]) -> None:
    assert xyz.parse_int_values(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("0.0-1.0 [6]", [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    ("0.5-1.5 (+0.25)", [0.5, 0.75, 1.0, 1.25, 1.5]),
    ("1-2 [3]", [1.0, 1.5, 2.0]),
    ("7, 7.5, 12", [7.0, 7.5, 12.0]),
])
def test_float_ranges(text: str, expected: list[float]) -> None:
    assert xyz.parse_float_values(text) == pytest.approx(expected)


def test_csv_quotes_keep_commas() -> None:
    assert xyz.split_values('cat, "dog, big", bird') == ["cat", "dog, big", "bird"]
    assert xyz.find_axis("Prompt S/R", xyz.default_axes()).parse('cat, "dog, big"') == ["cat", "dog, big"]


def test_bad_values_are_named() -> None:
    with pytest.raises(xyz.AxisValueError, match="'abc' is not an integer"):
        xyz.parse_int_values("1, abc")
    with pytest.raises(xyz.AxisValueError, match="step must not be 0"):
        xyz.parse_float_values("1-2 (+0)")
    with pytest.raises(xyz.AxisValueError, match="unknown axis type"):
        xyz.find_axis("Bogus", xyz.default_axes())


def test_seed_minus_one_is_randomised_unless_kept() -> None:
    fixed = xyz.fix_seeds([-1, 5, -1], keep_random=False, rng=random.Random(0))
    assert fixed[1] == 5 and fixed[0] != -1 and fixed[2] != -1 and fixed[0] < xyz.MAX_RANDOM_SEED
    assert xyz.fix_seeds([-1, 5], keep_random=True) == [-1, 5]


def _apply(label: str, text: str, p: object, index: int = 0) -> object:
    axes = xyz.default_axes()
    axis = xyz.find_axis(label, axes)
    values = axis.parse(text)
    xyz.check_values(axis, values, p)
    return xyz.apply_cell(p, [(axis, values[index], values)], copy=copy_params)


def test_axis_application_sets_params_on_a_copy() -> None:
    p = Txt2ImgParams(prompt="a cat on a mat", negative_prompt="blurry cat")
    assert _apply("Seed", "42", p).seed == 42
    assert _apply("Var. seed", "7", p).subseed == 7
    assert _apply("Steps", "1-5 (+2)", p, 2).steps == 5
    assert _apply("Hires steps", "12", p).hr_second_pass_steps == 12
    assert _apply("CFG Scale", "3.5", p).cfg_scale == 3.5
    assert _apply("Sampler", "Euler a", p).sampler_name == "Euler a"
    assert _apply("Schedule type", "Karras", p).scheduler == "Karras"
    assert _apply("Denoising", "0.3", p).denoising_strength == 0.3
    q = _apply("Size", "640x384", p)
    assert (q.width, q.height) == (640, 384)
    q = _apply("Checkpoint name", "model.safetensors", p)
    assert q.override_settings == {"sd_model_checkpoint": "model.safetensors"}
    q = _apply("Clip skip", "1-2", p, 1)
    assert q.override_settings == {"CLIP_stop_at_last_layers": 2}
    assert p.override_settings == {} and p.seed == -1 and p.steps == 50  # the original is untouched
    q = _apply("Prompt S/R", "cat, dog", p, 1)
    assert (q.prompt, q.negative_prompt) == ("a dog on a mat", "blurry dog")
    assert _apply("Nothing", "", p).prompt == p.prompt
    assert _apply("Face restore", "true, false", p).restore_faces is True
    assert _apply("Refiner checkpoint", "None", p).refiner_checkpoint is None


def test_img2img_axes_and_tabs() -> None:
    p = Img2ImgParams()
    assert _apply("Image CFG Scale", "1.5", p).image_cfg_scale == 1.5
    labels = [a.label for a in xyz.axes_for("txt2img")]
    assert "Hires steps" in labels and "Image CFG Scale" not in labels
    assert "Image CFG Scale" in [a.label for a in xyz.axes_for("img2img")]


def test_prompt_sr_needs_the_first_value_in_the_prompt() -> None:
    with pytest.raises(xyz.AxisValueError, match="Prompt S/R did not find dog in prompt or negative prompt"):
        _apply("Prompt S/R", "dog, cat", Txt2ImgParams(prompt="a cat"))


def test_prompt_order_permutes_tokens() -> None:
    axis = xyz.find_axis("Prompt order", xyz.default_axes())
    values = axis.parse("red, blue")
    assert values == [["red", "blue"], ["blue", "red"]]
    p = Txt2ImgParams(prompt="a red ball and a blue box")
    q = xyz.apply_cell(p, [(axis, values[1], values)], copy=copy_params)
    assert q.prompt == "a blue ball and a red box"
    assert axis.format(values[1]) == "blue, red"


def test_labels() -> None:
    axes = xyz.default_axes()
    assert xyz.find_axis("Steps", axes).format(20) == "Steps: 20"
    assert xyz.find_axis("CFG Scale", axes).format(7.0) == "CFG Scale: 7"
    assert xyz.find_axis("Prompt S/R", axes).format("dog") == "dog"
    assert xyz.find_axis("Nothing", axes).format(None) == ""


def test_cell_plan_covers_every_cell_and_puts_costly_axes_outside() -> None:
    cells = xyz.plan_cells(3, 2, 1, (0.0, 0.0, 0.0))
    assert sorted(cells) == sorted((x, y, 0) for x in range(3) for y in range(2))
    assert cells[:3] == [(0, 0, 0), (1, 0, 0), (2, 0, 0)]  # X changes fastest by default
    cells = xyz.plan_cells(3, 2, 1, (1.0, 0.0, 0.0))  # X is a checkpoint axis: changes slowest
    assert cells[:2] == [(0, 0, 0), (0, 1, 0)]
    assert len(cells) == 6


def test_vary_seeds() -> None:
    assert xyz.vary_seed(100, 2, 1, 1, 3, 2, vary=(True, False, False)) == 102
    assert xyz.vary_seed(100, 2, 1, 1, 3, 2, vary=(True, True, True)) == 100 + 2 + 3 + 6
