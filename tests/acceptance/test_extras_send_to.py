"""Extras result area (issue 17 item 1, A1111 `create_output_panel("extras")`): "Send to img2img", "Send to inpaint"
and "Send to extras" under the result gallery send the selected result to that tab's image; the result is shown
whole (object-fit: contain), not cropped to a square thumbnail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.acceptance.conftest import RunningApp, WebUIFactory, open_ui

pytestmark = pytest.mark.browser

NATURAL_WIDTH = "(sel) => { const i = document.querySelector(sel); return i && i.complete ? i.naturalWidth : 0; }"


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    return webui_app(["--api"])


def upscale_in_extras(page: Any, source: Path) -> None:
    """Upload `source` (96×48) in Extras and upscale it ×2 with Lanczos: the result is 192×96."""
    page.click("#tab_extras-button")
    page.set_input_files("#extras_image input[type=file]", str(source))
    page.wait_for_selector("#extras_image img", timeout=20000)
    scale = page.locator("#extras_upscaling_resize input[type=number]").first
    scale.fill("2")
    scale.press("Tab")
    page.click("#extras_upscaler_1 input")
    page.locator("ul[role=listbox] li", has_text="Lanczos").first.click()
    page.click("#extras_generate")
    page.wait_for_function(f"({NATURAL_WIDTH})('#extras_gallery img') === 192", timeout=60000)


def test_extras_result_goes_to_img2img_inpaint_and_extras(app: RunningApp, browser: Any, tmp_path: Path) -> None:
    source = tmp_path / "wide.png"
    Image.new("RGB", (96, 48), (30, 160, 220)).save(source)
    page = open_ui(browser, app.url, height=1000)
    upscale_in_extras(page, source)

    # the whole result is visible: contained in its box, not cropped
    fit = page.evaluate("getComputedStyle(document.querySelector('#extras_gallery img')).objectFit")
    assert fit == "contain"

    for elem_id in ("extras_send_to_img2img", "extras_send_to_inpaint", "extras_send_to_extras"):
        assert page.locator(f"#{elem_id}").is_visible(), elem_id

    page.click("#extras_send_to_img2img")
    page.wait_for_selector("#tab_img2img", state="visible", timeout=10000)
    page.wait_for_function(f"({NATURAL_WIDTH})('#img2img_image img') === 192", timeout=20000)

    page.click("#tab_extras-button")
    page.click("#extras_send_to_inpaint")
    page.wait_for_selector("#img2img_inpaint_tab", state="visible", timeout=10000)
    page.wait_for_function("(e => e && e.offsetParent !== null && !e.innerText.includes('Upload an image'))"
                           "(document.getElementById('img2maskimg'))", timeout=20000)

    page.click("#tab_extras-button")
    page.click("#extras_send_to_extras")
    page.wait_for_function(f"({NATURAL_WIDTH})('#extras_image img') === 192", timeout=20000)
    page.close()
