"""Soft inpainting as A1111 users reach it: the API's `alwayson_scripts["soft inpainting"]` entry with A1111's
positional args (enabled, schedule bias, preservation strength, transition contrast boost, mask influence,
difference threshold, difference contrast), its infotext fields, and the "Soft Inpainting" accordion in img2img."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png, open_ui
from tests.browser.conftest import fill_text

SOFT_ARGS = [True, 1, 0.5, 4, 0, 0.5, 2]


def _b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    return webui_app(["--api"])


def inpaint(app: RunningApp, **extra: Any) -> dict[str, Any]:
    gradient = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1))
    init = Image.fromarray(np.stack([gradient, gradient.T, 255 - gradient], axis=2), "RGB")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    body = {"prompt": "a cat", "init_images": [_b64(init)], "mask": _b64(mask), "mask_blur": 4, "width": 64,
            "height": 64, "steps": 3, "seed": 5, "sampler_name": "Euler", "denoising_strength": 0.75,
            "inpainting_fill": 1, **extra}
    response = app.client.post("/sdapi/v1/img2img", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def test_api_soft_inpainting_changes_the_image_and_infotext(app: RunningApp) -> None:
    hard = inpaint(app)
    soft = inpaint(app, alwayson_scripts={"soft inpainting": {"args": SOFT_ARGS}})
    hard_px = np.asarray(decode_png(hard["images"][0]).convert("RGB"), dtype=np.int16)
    soft_px = np.asarray(decode_png(soft["images"][0]).convert("RGB"), dtype=np.int16)
    assert np.abs(hard_px - soft_px).max() > 0
    text = json.loads(soft["info"])["infotexts"][0]
    assert ("Soft inpainting enabled: True, Schedule bias: 1, Preservation strength: 0.5, "
            "Transition contrast boost: 4, Mask influence: 0, Difference threshold: 0.5, "
            "Difference contrast: 2") in text
    assert "Soft inpainting" not in json.loads(hard["info"])["infotexts"][0]
    off = inpaint(app, alwayson_scripts={"Soft Inpainting": {"args": [False, 1, 0.5, 4, 0, 0.5, 2]}})
    assert "Soft inpainting" not in json.loads(off["info"])["infotexts"][0]
    assert "soft inpainting" in app.client.get("/sdapi/v1/scripts").json()["img2img"]


@pytest.mark.browser
def test_soft_inpainting_accordion_in_img2img(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url)
    page.click("#tab_img2img-button")
    accordion = page.locator("#img2img_script_soft_inpainting")
    assert accordion.is_visible()
    assert "Soft Inpainting" in accordion.inner_text()
    accordion.locator("button, .label-wrap").first.click()
    for label in ("Soft inpainting", "Schedule bias", "Preservation strength", "Transition contrast boost",
                  "Mask influence", "Difference threshold", "Difference contrast"):
        page.wait_for_selector(f"#img2img_script_soft_inpainting :text('{label}')", timeout=10000)
    assert page.locator("#txt2img_script_soft_inpainting").count() == 0
    # ↙ paste of an infotext with soft inpainting fills the accordion (A1111 `infotext_fields`)
    fill_text(page, "img2img_prompt", "a fox\nSteps: 2, Seed: 3, Size: 64x64, Soft inpainting enabled: True, "
                                          "Schedule bias: 2.5, Preservation strength: 0.5, Transition contrast "
                                          "boost: 6, Mask influence: 0, Difference threshold: 0.5, "
                                          "Difference contrast: 2")
    page.click("#img2img_paste")
    page.wait_for_function("document.querySelector('#script_img2img_soft_inpainting_enabled input')?.checked",
                           timeout=20000)
    assert page.input_value("#script_img2img_soft_inpainting_mask_blend_power input[type=number]") == "2.5"
    assert page.input_value(
        "#script_img2img_soft_inpainting_inpaint_detail_preservation input[type=number]") == "6"
