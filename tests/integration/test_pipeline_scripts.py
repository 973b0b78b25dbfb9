"""Script hooks, callbacks and X/Y/Z through the real pipeline on the tiny SD1 checkpoint (docs/extensions.md)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from modules.extensions.api import CallbackRegistry, ScriptArgumentError, build_runners
from modules.images import parse_infotext
from modules.processing import process_images
from modules.processing.context import AppContext, ScriptRunners
from modules.processing.run import run_txt2img
from tests.integration.test_pipeline_helpers import make_ctx, new_job, pixels, t2i

REPO = Path(__file__).resolve().parents[2]

SCRIPT = '''
from PIL import ImageOps
from modules.extensions.api import AlwaysVisible, Script, ScriptArg
from modules.processing import Processed, process_images


class Tagger(Script):
    def __init__(self):
        self.calls = []

    def title(self):
        return "Tagger"

    def show(self, is_img2img):
        return AlwaysVisible

    def ui(self, is_img2img):
        return [ScriptArg("suffix", default=", tagged"), ScriptArg("invert", default=False, kind="checkbox")]

    def setup(self, p, suffix, invert):
        self.calls.append("setup")

    def before_process(self, p, suffix, invert):
        self.calls.append("before_process")

    def process(self, p, suffix, invert):
        self.calls.append("process")
        p.prompt = p.prompt + suffix

    def before_process_batch(self, p, suffix, invert, batch_number, prompts, seeds, subseeds):
        self.calls.append(("before_process_batch", batch_number, list(prompts), list(seeds)))

    def process_batch(self, p, suffix, invert, batch_number, prompts, seeds, subseeds):
        self.calls.append("process_batch")

    def process_before_every_sampling(self, p, suffix, invert, x, noise, c, uc):
        self.calls.append(("sampling", tuple(x.shape)))

    def post_sample(self, p, ps, suffix, invert):
        self.calls.append("post_sample")

    def before_hr(self, p, suffix, invert):
        self.calls.append("before_hr")

    def postprocess_batch(self, p, suffix, invert, images, batch_number):
        self.calls.append("postprocess_batch")

    def postprocess_batch_list(self, p, pp, suffix, invert, batch_number):
        self.calls.append(("postprocess_batch_list", len(pp.images)))

    def postprocess_image(self, p, pp, suffix, invert):
        self.calls.append("postprocess_image")
        if invert:
            pp.image = ImageOps.invert(pp.image.convert("RGB"))

    def postprocess(self, p, processed, suffix, invert):
        self.calls.append(("postprocess", len(processed.images)))


class Twice(Script):
    def title(self):
        return "Twice"

    def ui(self, is_img2img):
        return [ScriptArg("first_seed", default=1), ScriptArg("second_seed", default=2)]

    def run(self, p, first_seed, second_seed):
        self.got = (first_seed, second_seed)
        p.seed = first_seed
        a = process_images(p)
        p.seed = second_seed
        b = process_images(p)
        return Processed(p, a.images + b.images, seed=first_seed, infotexts=a.infotexts + b.infotexts,
                         all_seeds=a.all_seeds + b.all_seeds)
'''


@pytest.fixture(scope="module")
def base_ctx(tiny_checkpoint: Any, tmp_path_factory: pytest.TempPathFactory) -> AppContext:
    return make_ctx(tiny_checkpoint, tmp_path_factory.mktemp("scripts"), {"sd1": ("sd1", 0)})


@pytest.fixture(scope="module")
def scripted(base_ctx: AppContext, tmp_path_factory: pytest.TempPathFactory) -> tuple[AppContext, CallbackRegistry]:
    root = tmp_path_factory.mktemp("scriptroot")
    (root / "scripts").mkdir()
    (root / "scripts" / "tagger.py").write_text(SCRIPT, encoding="utf-8")
    registry = CallbackRegistry()
    txt2img, img2img, errors = build_runners(root, callbacks=registry)
    assert not errors
    ctx = dataclasses.replace(base_ctx, scripts=ScriptRunners(txt2img=txt2img, img2img=img2img), callbacks=registry)
    return ctx, registry


def tagger(ctx: AppContext) -> Any:
    return ctx.scripts.txt2img.find("Tagger", alwayson=True)


def test_alwayson_hooks_fire_in_order_and_change_the_job(scripted: tuple[AppContext, CallbackRegistry]) -> None:
    ctx, _ = scripted
    script = tagger(ctx)
    script.calls.clear()
    plain = run_txt2img(base := ctx, t2i("sd1", alwayson_scripts={"tagger": {"args": ["", False]}}), new_job())
    script.calls.clear()
    params = t2i("sd1", batch_size=2, enable_hr=True, hr_scale=1.5, denoising_strength=0.5,
                 alwayson_scripts={"Tagger": {"args": [", tagged", True]}})
    result = run_txt2img(base, params, new_job())
    assert params.prompt == "a cat"  # the caller's params are not changed by scripts
    assert result.all_prompts == ["a cat, tagged"] * 2
    assert parse_infotext(result.infotexts[-1])["Prompt"] == "a cat, tagged"
    names = [c if isinstance(c, str) else c[0] for c in script.calls]
    assert names == ["setup", "before_process", "process", "before_process_batch", "process_batch", "sampling",
                     "before_hr", "sampling", "post_sample", "postprocess_batch", "postprocess_batch_list",
                     "postprocess_image", "postprocess_image", "postprocess"]
    assert script.calls[3] == ("before_process_batch", 0, ["a cat, tagged"] * 2, [7, 8])
    assert script.calls[5][1] == (2, 4, 16, 16) and script.calls[7][1] == (2, 4, 24, 24)
    # postprocess_image inverted the picture: compare against the same job without inversion
    again = run_txt2img(base, dataclasses.replace(params, alwayson_scripts={"Tagger": {"args": [", tagged"]}}),
                        new_job())
    assert (pixels(result.images[1]) + pixels(again.images[1]) == 255).all()
    assert plain.all_prompts == ["a cat"]


def test_selectable_script_gets_its_args_and_calls_process_images(
        scripted: tuple[AppContext, CallbackRegistry]) -> None:
    ctx, _ = scripted
    params = t2i("sd1", script_name="twice", script_args=[11, 12])
    result = run_txt2img(ctx, params, new_job())
    script = ctx.scripts.txt2img.find("Twice")
    assert script.got == (11, 12)
    assert result.all_seeds == [11, 12] and len(result.images) == 2
    assert "Seed: 12" in result.infotexts[1]
    with pytest.raises(ScriptArgumentError):
        run_txt2img(ctx, t2i("sd1", script_name="no such script"), new_job())
    with pytest.raises(RuntimeError, match="only be called while a job is running"):
        process_images(params)


def test_callbacks_fire_per_model_call_and_a_raising_one_is_reported(
        scripted: tuple[AppContext, CallbackRegistry]) -> None:
    ctx, registry = scripted
    seen: Counter[str] = Counter()
    saved: list[str] = []

    def boom(params: Any) -> None:
        raise RuntimeError("extension bug")

    def brighten(params: Any) -> None:
        params.pnginfo["parameters"] += ", Extension: yes"

    names = [registry.on_cfg_denoiser(lambda p: seen.update(["denoiser"]) or None),
             registry.on_cfg_denoised(boom),
             registry.on_cfg_denoised(lambda p: seen.update(["denoised"]) or None),
             registry.on_cfg_after_cfg(lambda p: seen.update(["after"]) or None),
             registry.on_image_grid(lambda p: seen.update([f"grid {p.cols}x{p.rows}"]) or None),
             registry.on_before_image_saved(brighten),
             registry.on_image_saved(lambda p: saved.append(p.filename))]
    try:
        result = run_txt2img(ctx, t2i("sd1", steps=3, batch_size=2, do_not_save_samples=False), new_job())
    finally:
        for entries in registry.callbacks.values():
            entries[:] = [e for e in entries if e.name not in names]
    assert seen == {"denoiser": 3, "denoised": 3, "after": 3, "grid 2x1": 1}  # Euler: one model call per step
    assert [f.error for f in registry.failures][-3:] == ["RuntimeError: extension bug"] * 3
    assert len(saved) == 3 and all(Path(s).is_file() for s in saved)  # 2 samples + grid
    from PIL import Image

    from modules.images import read_infotext
    assert read_infotext(Image.open(saved[0])).endswith(", Extension: yes")
    assert len(result.images) == 3


def test_xyz_sampler_steps_cfg_end_to_end(base_ctx: AppContext) -> None:
    txt2img, _, errors = build_runners(REPO, callbacks=CallbackRegistry())
    assert not errors
    ctx = dataclasses.replace(base_ctx, scripts=ScriptRunners(txt2img=txt2img, img2img=base_ctx.scripts.img2img))
    args = ["Sampler", "Euler, Euler a", [], "Steps", "1, 2", [], "CFG Scale", "3, 7", [],
            True, True, False, False, False, False, False, 0, True]
    result = run_txt2img(ctx, t2i("sd1", seed=5, script_name="X/Y/Z plot", script_args=args), new_job())
    first = result.index_of_first_image
    cells = [parse_infotext(text) for text in result.infotexts[first:]]
    assert len(cells) == 8 and len(result.images) == first + 8
    assert sorted((c["Sampler"], c["Steps"], c["CFG scale"]) for c in cells) == sorted(
        (s, st, cfg) for s in ("Euler", "Euler a") for st in ("1", "2") for cfg in ("3", "7"))
    assert all(c["Seed"] == "5" for c in cells)
    assert result.images[0].width >= 2 * 32 and result.images[0].height >= 2 * 32
