"""`postprocessing_enable_in_main_ui` as A1111 users reach it: the Extras operations listed in the setting are
always-on scripts of txt2img and img2img (an accordion each in the page, `alwayson_scripts` entries in the API with
A1111's argument order); each runs on every generated image before it is saved and writes its infotext fields.
The app is built only through `create_app` from a data dir whose config.json lists "Upscale" and "Auto-sized crop"."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png, open_ui
from tests.browser.conftest import fill_text

# A1111 `ScriptPostprocessingUpscale` args: enabled, mode (0 scale by), scale, max side, width, height, crop,
# upscaler 1, upscaler 2, upscaler 2 visibility
UPSCALE_BY_2 = [True, 0, 2, 0, 512, 512, True, "Lanczos", "None", 0]


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    def prepare(data_dir: Path) -> None:
        (data_dir / "config.json").write_text(json.dumps(
            {"postprocessing_enable_in_main_ui": ["Upscale", "Auto-sized crop", "no such operation"]}))

    return webui_app(["--api"], prepare=prepare)


def _info(answer: dict[str, Any]) -> str:
    return str(json.loads(answer["info"])["infotexts"][0])


def test_listed_operations_are_always_on_scripts_of_both_tabs(app: RunningApp) -> None:
    scripts = app.client.get("/sdapi/v1/scripts").json()
    for tab in ("txt2img", "img2img"):
        assert "upscale" in scripts[tab] and "auto-sized crop" in scripts[tab], scripts[tab]
    assert "gfpgan" not in scripts["txt2img"]  # not listed in the setting: not added


def test_upscale_runs_on_each_generated_image_and_writes_its_infotext(app: RunningApp) -> None:
    plain = app.txt2img()
    assert decode_png(plain["images"][0]).size == (64, 64)
    assert "Postprocess" not in _info(plain)
    answer = app.txt2img(batch_size=2, alwayson_scripts={"upscale": {"args": UPSCALE_BY_2}})
    # the grid of the two upscaled images first, then each image (A1111 `return_grid`)
    assert [decode_png(b).size for b in answer["images"]] == [(256, 128), (128, 128), (128, 128)]
    assert "Postprocess upscale by: 2, Postprocess upscaler: Lanczos" in _info(answer)
    # the same operation without an upscaler (A1111's default "None") leaves the image as it is
    untouched = app.txt2img(alwayson_scripts={"Upscale": {"args": [True, 0, 2, 0, 512, 512, True, "None"]}})
    assert decode_png(untouched["images"][0]).size == (64, 64)
    # an Extras script works the same way: Auto-sized crop of a 128x64 image to its 64x64 centre
    crop = app.txt2img(width=128, height=64, alwayson_scripts={"auto-sized crop": {"args": {
        "enable": True, "mindim": 64, "maxdim": 128, "minarea": 64 * 64, "maxarea": 64 * 64,
        "objective": "Maximize area", "threshold": 1.0}}})
    assert decode_png(crop["images"][0]).size == (64, 64)


def test_upscale_in_img2img_and_bad_upscaler_is_a_clear_error(app: RunningApp) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 120, 200)).save(buffer, format="PNG")
    body = {"prompt": "a cat", "init_images": [base64.b64encode(buffer.getvalue()).decode("ascii")], "steps": 2,
            "width": 64, "height": 64, "denoising_strength": 0.5, "sampler_name": "Euler",
            "alwayson_scripts": {"upscale": {"args": [True, 1, 2, 0, 96, 80, True, "Nearest", "None", 0]}}}
    answer = app.client.post("/sdapi/v1/img2img", json=body)
    assert answer.status_code == 200, answer.text
    assert decode_png(answer.json()["images"][0]).size == (96, 80)
    assert "Postprocess upscale to: 96x80, Postprocess crop to: 96x80" in _info(answer.json())


@pytest.mark.browser
def test_upscale_accordion_in_txt2img_generates_the_upscaled_image(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url, height=1400)
    accordion = page.locator("#txt2img_postprocessing_upscale")
    accordion.wait_for(timeout=20000)
    assert page.locator("#txt2img_postprocessing_auto_sized_crop").count() == 1
    accordion.locator(".label-wrap").first.click()
    page.click("#txt2img_postprocessing_upscale_upscaler_1 input")
    page.get_by_role("option", name="Lanczos", exact=True).click()
    fill_text(page, "txt2img_prompt", "a cat")
    for elem_id, value in (("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_steps", 2)):
        box = page.locator(f"#{elem_id} input[type=number]").first
        box.fill(str(value))
        box.press("Tab")
    page.click("#txt2img_generate")
    page.wait_for_function(
        "document.querySelector('#html_info_txt2img')?.innerText.includes('Postprocess upscaler: Lanczos')",
        timeout=120000)
    page.wait_for_function(  # the gallery <img> is in the DOM before its bytes have arrived (naturalWidth 0)
        "(() => { const i = document.querySelector('#txt2img_gallery img'); return i && i.complete && i.naturalWidth > 0; })()",
        timeout=20000)
    width = page.eval_on_selector("#txt2img_gallery img", "e => e.naturalWidth")
    assert width == 128
    page.click("#tab_img2img-button")  # tab contents mount when the tab opens (Gradio 6)
    page.wait_for_selector("#img2img_postprocessing_upscale", timeout=20000)
