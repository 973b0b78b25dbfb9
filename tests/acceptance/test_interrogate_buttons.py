"""img2img's Interrogate CLIP / Interrogate DeepBooru buttons (A1111 ids `interrogate`, `deepbooru`) write what the
tiny models placed in the data dir say about the uploaded image into the img2img prompt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.acceptance.conftest import RunningApp, WebUIFactory, open_ui
from tests.fixtures.tiny_interrogate import BLIP_WORD, lay_out_models

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    def prepare(data_dir: Path) -> None:
        lay_out_models(data_dir)
        settings = {"interrogate_clip_min_length": 3, "interrogate_clip_max_length": 6}
        (data_dir / "config.json").write_text(json.dumps(settings), encoding="utf-8")

    return webui_app(["--no-download-sd-model"], checkpoints={}, prepare=prepare)


def _prompt(page: Any) -> str:
    return str(page.locator("#img2img_prompt textarea").first.input_value())


def test_interrogate_buttons_fill_the_prompt(app: RunningApp, browser: Any, tmp_path: Path) -> None:
    source = tmp_path / "red.png"
    Image.new("RGB", (64, 48), (200, 20, 20)).save(source)
    page = open_ui(browser, app.url, height=1000)
    page.click("#tab_img2img-button")
    page.set_input_files("#img2img_image input[type=file]", str(source))
    page.wait_for_selector("#img2img_image img", timeout=20000)

    page.click("#deepbooru")
    page.wait_for_function("document.querySelector('#img2img_prompt textarea').value !== ''", timeout=60000)
    assert _prompt(page) == "1girl, hat \\(object\\), smile"

    page.click("#interrogate")
    page.wait_for_function(f"document.querySelector('#img2img_prompt textarea').value.startsWith('{BLIP_WORD}')",
                           timeout=60000)
    parts = _prompt(page).split(", ")
    assert parts[0].split()[0] == BLIP_WORD and len(parts) == 7  # caption + artist + 3 flavours + medium + movement
