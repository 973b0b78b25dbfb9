"""X/Y/Z plot grid infotext (A1111 writes "Script", "X Type", "X Values", "Fixed X Values" into the grid's extra
generation params) and the fields that paste it back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from modules.extensions.api import CallbackRegistry, ScriptRunner
from modules.images import split_infotext
from modules.processing.context import GenerationResult
from modules.processing.params import Txt2ImgParams

ROOT = Path(__file__).resolve().parents[2]


def run(p: Txt2ImgParams) -> GenerationResult:
    info = f"{p.prompt}\nSteps: {p.steps}, Seed: {p.seed}"
    return GenerationResult(images=[Image.new("RGB", (p.width, p.height))], infotexts=[info],
                            all_prompts=[p.prompt], all_negative_prompts=[""], all_seeds=[p.seed], all_subseeds=[-1])


def plot(args: dict[str, Any]) -> GenerationResult:
    runner = ScriptRunner(is_img2img=False, callbacks=CallbackRegistry())
    runner.load(ROOT)
    p = Txt2ImgParams(prompt="cat", width=64, height=64, seed=7, script_name="X/Y/Z plot",
                      script_args={"include_lone_images": True, **args})
    result: GenerationResult = runner.run(p, process_images=run)
    return result


def test_grid_infotext_names_the_script_and_its_axes() -> None:
    result = plot({"x_type": "Steps", "x_values": "1,2", "y_type": "Seed", "y_values": "-1, 9"})
    _prompt, _neg, grid = split_infotext(result.infotexts[0])
    assert grid["Script"] == "X/Y/Z plot"
    assert (grid["X Type"], grid["X Values"]) == ("Steps", "1,2")
    assert (grid["Y Type"], grid["Y Values"]) == ("Seed", "-1, 9")
    fixed = [int(v) for v in grid["Fixed Y Values"].split(", ")]
    assert fixed[1] == 9 and fixed[0] != -1
    assert "Z Type" not in grid
    assert all("Script" not in text for text in result.infotexts[1:])  # cells keep their own infotext


def test_keep_random_seeds_writes_no_fixed_values() -> None:
    result = plot({"x_type": "Seed", "x_values": "1, 2", "no_fixed_seeds": True})
    assert "Fixed X Values" not in split_infotext(result.infotexts[0])[2]
