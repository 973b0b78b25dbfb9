"""X/Y/Z plot script end to end with a stand-in pipeline: cells, per-cell infotext, legends, pages."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from modules.extensions.api import CallbackRegistry, ScriptRunner
from modules.processing.context import GenerationResult
from modules.processing.params import Txt2ImgParams

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runner() -> ScriptRunner:
    r = ScriptRunner(is_img2img=False, callbacks=CallbackRegistry())
    r.load(ROOT)
    assert "X/Y/Z plot" in r.titles(), r.load_errors
    return r


def fake_pipeline(calls: list[Any]) -> Any:
    def run(p: Txt2ImgParams) -> GenerationResult:
        calls.append(p)
        shade = (p.steps * 10) % 256
        image = Image.new("RGB", (p.width, p.height), (shade, int(p.cfg_scale * 10) % 256, 0))
        info = f"{p.prompt}\nSteps: {p.steps}, CFG scale: {p.cfg_scale}, Seed: {p.seed}"
        return GenerationResult(images=[image], infotexts=[info], all_prompts=[p.prompt],
                                all_negative_prompts=[p.negative_prompt], all_seeds=[p.seed], all_subseeds=[-1])
    return run


def test_xy_grid_runs_each_cell_with_its_values(runner: ScriptRunner) -> None:
    calls: list[Txt2ImgParams] = []
    p = Txt2ImgParams(prompt="cat", width=64, height=64, seed=-1, script_name="x/y/z plot",
                      script_args={"x_type": "Steps", "x_values": "1-3", "y_type": "CFG Scale", "y_values": "5, 9",
                                   "include_lone_images": True})
    result = runner.run(p, process_images=fake_pipeline(calls))
    assert sorted((c.steps, c.cfg_scale) for c in calls) == sorted((s, c) for s in (1, 2, 3) for c in (5.0, 9.0))
    assert len({c.seed for c in calls}) == 1 and calls[0].seed != -1  # seed fixed once for all cells
    assert result.index_of_first_image == 1
    grid = result.images[0]
    assert grid.width > 3 * 64 and grid.height > 2 * 64  # cells plus legend bands
    # per-cell infotext travels with the lone images
    assert len(result.images) == 1 + 6
    assert {t.split("\n")[1].split(",")[0] for t in result.infotexts[1:]} == {"Steps: 1", "Steps: 2", "Steps: 3"}
    assert len(result.all_prompts) == 6


def test_positional_script_args_as_the_api_sends_them(runner: ScriptRunner) -> None:
    calls: list[Txt2ImgParams] = []
    p = Txt2ImgParams(prompt="a cat", width=64, height=64, seed=5, script_name="X/Y/Z plot",
                      script_args=["Prompt S/R", "cat, dog", [], "Nothing", "", [], "Nothing", "", [], False])
    result = runner.run(p, process_images=fake_pipeline(calls))
    assert [c.prompt for c in calls] == ["a cat", "a dog"]
    assert result.images[0].size == (128, 64)  # no legend
    assert p.prompt == "a cat"


def test_z_axis_gives_a_combined_grid_and_sub_grids(runner: ScriptRunner) -> None:
    calls: list[Txt2ImgParams] = []
    p = Txt2ImgParams(prompt="cat", width=64, height=64, seed=1, script_name="X/Y/Z plot",
                      script_args={"x_type": "Steps", "x_values": "1,2", "z_type": "Size", "z_values": "64x64, 64x32",
                                   "include_sub_grids": True, "draw_legend": False, "margin_size": 4})
    result = runner.run(p, process_images=fake_pipeline(calls))
    assert len(calls) == 4
    assert result.index_of_first_image == 1
    assert len(result.images) == 3  # combined grid + 2 sub-grids
    assert result.images[1].size == (64 * 2 + 4, 64)


def test_grid_above_the_pixel_limit_comes_out_as_pages(runner: ScriptRunner) -> None:
    calls: list[Txt2ImgParams] = []
    p = Txt2ImgParams(prompt="cat", width=64, height=64, seed=1, script_name="X/Y/Z plot",
                      script_args={"x_type": "Steps", "x_values": "1-8", "y_type": "CFG Scale", "y_values": "1-4",
                                   "draw_legend": False})
    p.settings = {"img_max_size_mp": 0.05}  # 12 cells of 4096 px at most per page
    limit = Image.MAX_IMAGE_PIXELS
    result = runner.run(p, process_images=fake_pipeline(calls))
    assert limit == Image.MAX_IMAGE_PIXELS
    pages = result.images[:result.index_of_first_image]
    assert len(pages) > 1
    assert all(page.width * page.height <= 50_000 for page in pages)
    assert sum(page.width * page.height for page in pages) == 32 * 64 * 64


def test_unknown_sampler_fails_before_any_image(runner: ScriptRunner) -> None:
    from modules.extensions.xyz import AxisValueError

    calls: list[Txt2ImgParams] = []
    p = Txt2ImgParams(script_name="X/Y/Z plot", script_args={"x_type": "Sampler", "x_values": "Euler, Nope9"})
    with pytest.raises(AxisValueError, match="Unknown sampler: Nope9"):
        runner.run(p, process_images=fake_pipeline(calls))
    assert calls == []


def test_result_is_a_generation_result(runner: ScriptRunner) -> None:
    p = Txt2ImgParams(width=64, height=64, seed=3, script_name="X/Y/Z plot",
                      script_args={"x_type": "Seed", "x_values": "1, 2"})
    result = runner.run(p, process_images=fake_pipeline([]))
    assert dataclasses.is_dataclass(result) and result.all_seeds == [1, 2]
