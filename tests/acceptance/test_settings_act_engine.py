"""More settings a user changes over HTTP that act on what the app returns (A1111 behaviour of each option):
result images (`return_mask`, `return_mask_composite`), model caches, console output, engine compatibility.

One app for the module; every test sets what it needs per request (`override_settings`) or through
`POST /sdapi/v1/options` and puts it back, so the tests do not depend on their order.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png
from tests.acceptance.test_models_wiring import _write_vae as write_vae
from tests.integration.test_extras_api import tiny_esrgan_x2


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> Iterator[RunningApp]:
    def prepare(data: Path) -> None:
        write_vae(data / "models" / "Stable-diffusion" / "sd1.safetensors", data / "models" / "VAE" / "own.safetensors",
                  1.0)
        (data / "models" / "ESRGAN").mkdir(parents=True)
        torch.save(tiny_esrgan_x2(), data / "models" / "ESRGAN" / "2x_Tiny.pth")

    yield webui_app(["--api"], checkpoints={"sd1.safetensors": "sd1", "other.safetensors": "sd1"}, prepare=prepare)


def set_options(app: RunningApp, **values: Any) -> None:
    response = app.client.post("/sdapi/v1/options", json=values)
    assert response.status_code == 200, response.text


def png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def img2img(app: RunningApp, **payload: Any) -> dict[str, Any]:
    body = {"prompt": "a cat", "width": 64, "height": 64, "steps": 2, "seed": 1, "sampler_name": "Euler",
            "denoising_strength": 0.5, **payload}
    response = app.client.post("/sdapi/v1/img2img", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def test_inpainting_returns_the_mask_and_the_mask_composite_when_asked(app: RunningApp) -> None:
    init = Image.new("RGB", (64, 64), (30, 120, 200))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    request = {"init_images": [png_b64(init)], "mask": png_b64(mask), "mask_blur": 0}
    plain = img2img(app, **request)
    assert len(plain["images"]) == 1
    both = img2img(app, **request, override_settings={"return_mask": True, "return_mask_composite": True})
    image, returned_mask, cut = (decode_png(b) for b in both["images"])
    assert np.array_equal(np.asarray(image), np.asarray(decode_png(plain["images"][0])))
    assert returned_mask.convert("L").getpixel((32, 32)) == 255 and returned_mask.convert("L").getpixel((2, 2)) == 0
    assert cut.mode == "RGBA" and cut.getpixel((2, 2))[3] == 0 and cut.getpixel((32, 32))[3] == 255
    assert len(json.loads(both["info"])["infotexts"]) == 3
    only_mask = img2img(app, **request, override_settings={"return_mask": True})
    assert len(only_mask["images"]) == 2 and decode_png(only_mask["images"][1]).mode == "RGB"
    no_mask = img2img(app, init_images=[png_b64(init)], override_settings={"return_mask": True})
    assert len(no_mask["images"]) == 1  # not inpainting: nothing to return


def test_checkpoint_and_vae_caches_switch_back_from_ram(app: RunningApp) -> None:
    set_options(app, sd_model_checkpoint="other")
    set_options(app, sd_model_checkpoint="sd1")
    set_options(app, sd_vae="own.safetensors")
    set_options(app, sd_vae="None")
    set_options(app, sd_vae="own.safetensors")
    assert "from cache" not in app.console  # A1111 defaults: nothing cached in RAM
    set_options(app, sd_checkpoint_cache=1, sd_vae_checkpoint_cache=1)
    try:
        set_options(app, sd_model_checkpoint="other")
        set_options(app, sd_model_checkpoint="sd1")
        set_options(app, sd_vae="None")
        set_options(app, sd_vae="own.safetensors")
    finally:
        set_options(app, sd_checkpoint_cache=0, sd_vae_checkpoint_cache=0, sd_vae="Automatic")
    assert "Loading weights of sd1.safetensors" in app.console and "Loading VAE weights own.safetensors from cache" \
        in app.console


def test_console_progress_bars_follow_the_settings_and_the_flag(app: RunningApp, webui_app: WebUIFactory,
                                                               capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    app.txt2img(steps=3, n_iter=2)
    console = capfd.readouterr().err
    assert "3/3" in console and "Total progress" in console  # the sampler's bar and the job's (multiple_tqdm)
    app.txt2img(steps=3, override_settings={"multiple_tqdm": False})
    console = capfd.readouterr().err
    assert "3/3" in console and "Total progress" not in console
    image = {"image": png_b64(Image.new("RGB", (24, 16), (10, 200, 30))), "upscaler_1": "2x_Tiny",
             "upscaling_resize": 2}
    set_options(app, ESRGAN_tile=16)
    try:
        assert app.client.post("/sdapi/v1/extra-single-image", json=image).status_code == 200
        assert "Tiled upscale" in capfd.readouterr().err
        set_options(app, enable_upscale_progressbar=False)
        image["upscaling_resize"] = 3  # not the cached result
        assert app.client.post("/sdapi/v1/extra-single-image", json=image).status_code == 200
        assert "Tiled upscale" not in capfd.readouterr().err
    finally:
        set_options(app, ESRGAN_tile=192, enable_upscale_progressbar=True)
    quiet = webui_app(["--api", "--disable-console-progressbars"])
    capfd.readouterr()
    quiet.txt2img(steps=3, n_iter=2)
    console = capfd.readouterr().err
    assert "3/3" not in console and "Total progress" not in console


def test_profiler_settings_write_a_trace_of_the_job(app: RunningApp) -> None:
    trace = app.data_dir / "profiles" / "job.json"
    app.txt2img(override_settings={"profiling_filename": "profiles/job.json"})
    assert not trace.exists()  # profiling_enable is off by default
    app.txt2img(override_settings={"profiling_enable": True, "profiling_filename": "profiles/job.json",
                                   "profiling_record_shapes": True, "profiling_with_stack": False})
    events = json.loads(trace.read_text())["traceEvents"]
    assert any("Input Dims" in e.get("args", {}) for e in events)  # record_shapes
    assert any(e.get("name") == "[memory]" for e in events)  # profile_memory (on by default)
    assert not any(e.get("cat") == "python_function" for e in events)  # with_stack off
    assert "Profile of the job" in app.console
    trace.unlink()
    app.txt2img(override_settings={"profiling_enable": True, "profiling_filename": "profiles/job.json",
                                   "profiling_record_shapes": False, "profiling_profile_memory": False})
    events = json.loads(trace.read_text())["traceEvents"]
    assert not any("Input Dims" in e.get("args", {}) for e in events) and not any(
        e.get("name") == "[memory]" for e in events)
    assert any(e.get("cat") == "python_function" for e in events)  # with_stack (on by default)
    trace.unlink()
    app.txt2img(override_settings={"profiling_enable": True, "profiling_filename": "profiles/job.json",
                                   "profiling_activities": []})
    assert not trace.exists() and "no profiler activity" in app.console
