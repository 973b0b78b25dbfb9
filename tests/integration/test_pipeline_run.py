"""End-to-end txt2img/img2img through `modules.processing.run` on the tiny random-weight checkpoints.

Sizes are tiny (32×32, 2–3 steps); the tiny VAE downscales by 2, so the latents are 16×16.
"""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from modules.images import parse_infotext, read_infotext
from modules.processing.context import AppContext
from modules.processing.params import Img2ImgParams, Txt2ImgParams
from modules.processing.run import run_img2img, run_txt2img
from modules.runtime.job_state import Interrupted, JobState
from tests.fixtures.app_context import context_for

FAMILIES = ("sd1", "sd2-v", "sdxl", "sdxl-refiner", "sd1-inpaint", "ip2p")


@pytest.fixture(scope="module")
def ctx(tiny_checkpoint, tmp_path_factory: pytest.TempPathFactory) -> AppContext:
    return context_for(tmp_path_factory.mktemp("data"), {family: tiny_checkpoint(family) for family in FAMILIES})


def new_job() -> types.SimpleNamespace:
    state = JobState("test")
    state.begin()
    return types.SimpleNamespace(state=state)


def t2i(family: str, **kw: object) -> Txt2ImgParams:
    base: dict[str, object] = dict(prompt="a cat", negative_prompt="blurry", width=32, height=32, steps=2, seed=7,
                                   sampler_name="Euler", override_settings={"sd_model_checkpoint": family})
    base.update(kw)
    return Txt2ImgParams(**base)  # type: ignore[arg-type]


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def outputs(ctx: AppContext) -> list[Path]:
    return sorted(Path(ctx.paths.data_dir).rglob("*.png"))


@pytest.mark.parametrize("family", ["sd1", "sd2-v", "sdxl", "sd1-inpaint", "ip2p"])
def test_txt2img_each_family(ctx: AppContext, family: str) -> None:
    result = run_txt2img(ctx, t2i(family, do_not_save_samples=True), new_job())
    assert [im.size for im in result.images] == [(32, 32)]
    assert result.all_seeds == [7]
    assert f"Model: {family}" in result.infotexts[0]
    assert pixels(result.images[0]).std() > 0  # not a flat/NaN image


def test_same_params_twice_identical_and_infotext_roundtrip(ctx: AppContext) -> None:
    params = t2i("sd1", prompt="a [cat:dog:0.5] AND a fox :0.7", sampler_name="Euler a", batch_size=2, n_iter=2,
                 seed=100)
    first = run_txt2img(ctx, params, new_job())
    second = run_txt2img(ctx, params, new_job())
    assert first.index_of_first_image == 1  # grid first
    assert first.all_seeds == [100, 101, 102, 103] and len(first.images) == 5
    for a, b in zip(first.images, second.images, strict=True):
        assert np.array_equal(pixels(a), pixels(b))
    assert not np.array_equal(pixels(first.images[1]), pixels(first.images[2]))  # different seeds differ
    samples = [p for p in first.saved_paths if "grids" not in p]
    assert len(samples) == 4
    for path, text in zip(samples, first.infotexts[1:], strict=True):
        assert read_infotext(Image.open(path)) == text
    parsed = parse_infotext(first.infotexts[2])
    assert parsed["Seed"] == "101" and parsed["Steps"] == "2" and parsed["Sampler"] == "Euler a"
    assert parsed["Size-1"] == "32" and parsed["Prompt"] == params.prompt
    assert parsed["Negative prompt"] == "blurry"
    assert (Path(ctx.paths.data_dir) / "params.txt").read_text(encoding="utf-8") == first.infotexts[1]


def test_batch_of_one_equals_batch_member(ctx: AppContext) -> None:
    batch = run_txt2img(ctx, t2i("sd1", batch_size=2, seed=5, do_not_save_samples=True, do_not_save_grid=True),
                        new_job())
    single = run_txt2img(ctx, t2i("sd1", seed=6, do_not_save_samples=True), new_job())
    assert np.abs(pixels(batch.images[2]) - pixels(single.images[0])).max() <= 1


@pytest.mark.parametrize("upscaler", ["Latent", "Lanczos"])
def test_hires_fix(ctx: AppContext, upscaler: str) -> None:
    params = t2i("sd1", enable_hr=True, hr_scale=1.5, hr_upscaler=upscaler, hr_second_pass_steps=2,
                 denoising_strength=0.5, do_not_save_samples=True)
    result = run_txt2img(ctx, params, new_job())
    assert result.images[0].size == (48, 48)
    fields = parse_infotext(result.infotexts[0])
    assert fields["Hires upscale"] == "1.5" and fields["Hires upscaler"] == upscaler
    assert fields["Size-1"] == "32"  # first-pass size, as A1111


def test_sdxl_refiner(ctx: AppContext) -> None:
    params = t2i("sdxl", refiner_checkpoint="sdxl-refiner", refiner_switch_at=0.5, steps=3,
                 do_not_save_samples=True)
    result = run_txt2img(ctx, params, new_job())
    assert result.images[0].size == (32, 32)
    assert "Refiner switch at: 0.5" in result.infotexts[0]


def test_size_not_multiple_of_8_is_rounded(ctx: AppContext) -> None:
    result = run_txt2img(ctx, t2i("sd1", width=37, height=35, do_not_save_samples=True), new_job())
    assert result.images[0].size == (32, 32)
    assert any("rounded" in n for n in result.notices)


def _init_image() -> Image.Image:
    image = Image.new("RGB", (48, 32), (200, 40, 40))
    ImageDraw.Draw(image).ellipse((8, 4, 40, 28), fill=(20, 180, 60))
    return image


@pytest.mark.parametrize("resize_mode", [0, 1, 2, 3])
def test_img2img_resize_modes(ctx: AppContext, resize_mode: int) -> None:
    params = Img2ImgParams(prompt="a cat", init_images=[_init_image()], width=32, height=32, steps=2, seed=3,
                           sampler_name="Euler", resize_mode=resize_mode, denoising_strength=0.5,
                           do_not_save_samples=True, override_settings={"sd_model_checkpoint": "sd1"})
    result = run_img2img(ctx, params, new_job())
    assert result.images[0].size == (32, 32)
    assert "Denoising strength: 0.5" in result.infotexts[0]


@pytest.mark.parametrize(("fill", "full_res"), [(0, False), (1, False), (2, False), (3, True)])
def test_inpaint_keeps_unmasked_pixels(ctx: AppContext, fill: int, full_res: bool) -> None:
    init = _init_image().resize((32, 32))
    mask = Image.new("L", (32, 32))
    ImageDraw.Draw(mask).rectangle((8, 8, 23, 23), fill=255)
    params = Img2ImgParams(prompt="a dog", init_images=[init], mask=mask, mask_blur=0, inpainting_fill=fill,
                           inpaint_full_res=full_res, inpaint_full_res_padding=4, width=32, height=32, steps=2,
                           seed=3, sampler_name="Euler", denoising_strength=0.9, do_not_save_samples=True,
                           override_settings={"sd_model_checkpoint": "sd1-inpaint"})
    result = run_img2img(ctx, params, new_job())
    out = pixels(result.images[0])
    assert result.images[0].size == (32, 32)
    assert np.array_equal(out[:4, :], pixels(init)[:4, :])  # outside the mask: the original (overlay)
    assert np.abs(out[10:22, 10:22] - pixels(init)[10:22, 10:22]).max() > 0
    assert "Conditional mask weight: 1" in result.infotexts[0]


def test_ip2p_img2img_with_image_cfg(ctx: AppContext) -> None:
    params = Img2ImgParams(prompt="make it blue", init_images=[_init_image()], width=32, height=32, steps=2,
                           seed=3, sampler_name="Euler", image_cfg_scale=1.5, do_not_save_samples=True,
                           override_settings={"sd_model_checkpoint": "ip2p"})
    result = run_img2img(ctx, params, new_job())
    assert "Image CFG scale: 1.5" in result.infotexts[0]


def test_interrupt_saves_nothing_and_next_job_runs(ctx: AppContext) -> None:
    before = outputs(ctx)
    job = new_job()
    original = job.state.sampler_callback

    def interrupt_on_second_step(info: dict) -> None:
        if info["i"] >= 1:
            job.state.interrupt()
        original(info)

    job.state.sampler_callback = interrupt_on_second_step  # type: ignore[method-assign]
    interrupted = run_txt2img(ctx, t2i("sd1", steps=3, n_iter=2), job)
    assert len(interrupted.images) == 1  # the interrupted batch, incomplete (A1111); no second batch
    assert outputs(ctx) == before  # save_incomplete_images is off
    early = new_job()
    early.state.interrupt()
    with pytest.raises(Interrupted):  # interrupted before any image: no result
        run_txt2img(ctx, t2i("sd1", steps=3), early)
    result = run_txt2img(ctx, t2i("sd1"), new_job())
    assert len(result.saved_paths) == 1
