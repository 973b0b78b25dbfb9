"""img2img "Copy image to:" (A1111 `add_copy_image_controls`): the image of one sub-tab is copied into another,
that sub-tab opens and its next job runs on the copied image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.acceptance.conftest import RunningApp, WebUIFactory, open_ui, set_number
from tests.browser.conftest import fill_text

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    running = webui_app(["--api"])
    running.wait_for_model()
    return running


def test_copy_image_from_img2img_to_sketch_and_generate(app: RunningApp, browser: Any, tmp_path: Path) -> None:
    source = tmp_path / "red.png"
    Image.new("RGB", (64, 64), (200, 20, 20)).save(source)
    page = open_ui(browser, app.url, height=1000)
    page.click("#tab_img2img-button")
    page.set_input_files("#img2img_image input[type=file]", str(source))
    page.wait_for_selector("#img2img_image img", timeout=20000)
    assert page.locator("#img2img_copy_img2img_to_img2img").is_disabled()
    page.click("#img2img_copy_img2img_to_sketch")
    page.wait_for_function("(e => e && e.offsetParent !== null && !e.innerText.includes('Upload an image'))"
                           "(document.getElementById('img2img_sketch'))", timeout=20000)
    fill_text(page, "img2img_prompt", "a cat")
    for elem_id, value in (("img2img_width", 64), ("img2img_height", 64), ("img2img_steps", 2),
                           ("img2img_seed", 61)):
        set_number(page, elem_id, value)
    page.click("#img2img_generate")
    page.wait_for_function(
        "document.querySelector('#html_info_img2img')?.innerText.includes('Seed: 61')"
        " || document.querySelector('.toast-body')", timeout=120000)
    assert "Seed: 61" in page.inner_text("#html_info_img2img"), page.inner_text("body")[-500:]
