"""What the txt2img gallery shows after a job: each image is a PNG with its infotext in the `parameters` chunk
(A1111 serves gallery images through `save_pil_to_file`, which embeds it), saving on or off; after an interrupt
the infotext shown belongs to the images shown (or no image and a notice)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.acceptance.conftest import RunningApp, WebUIFactory, open_ui, set_number
from tests.browser.conftest import fill_text

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    def progress_every_step(data: Path) -> None:
        (data / "config.json").write_text(json.dumps({"show_progress_every_n_steps": 1,
                                                      "live_preview_refresh_period": 100}))

    running = webui_app(["--api"], prepare=progress_every_step)
    running.wait_for_model()
    return running



def start(page: Any, seed: int, steps: int = 2) -> None:
    fill_text(page, "txt2img_prompt", "a cat")
    set_number(page, "txt2img_width", 64)
    set_number(page, "txt2img_height", 64)
    set_number(page, "txt2img_steps", steps)
    set_number(page, "txt2img_seed", seed)
    page.click("#txt2img_generate")


def wait_for_seed(page: Any, seed: int) -> None:
    page.wait_for_function("(s) => document.querySelector('#html_info_txt2img')?.innerText.includes('Seed: ' + s)",
                           arg=seed, timeout=120000)


def gallery_sources(page: Any) -> list[str]:
    return list(page.evaluate("Array.from(document.querySelectorAll('#txt2img_gallery img')).map(i => i.src)"))


@pytest.mark.parametrize("saving", [True, False], ids=["saving-on", "saving-off"])
def test_gallery_image_carries_its_infotext(app: RunningApp, browser: Any, saving: bool) -> None:
    assert app.client.post("/sdapi/v1/options", json={"samples_save": saving}).status_code == 200
    seed = 21 if saving else 22
    page = open_ui(browser, app.url)
    start(page, seed)
    wait_for_seed(page, seed)
    [source] = gallery_sources(page)
    response = app.client.get(source)
    assert response.status_code == 200
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.format == "PNG"
        parameters = str(image.info.get("parameters", ""))
    assert parameters.startswith("a cat\n") and f"Seed: {seed}" in parameters and "Steps: 2" in parameters
    assert parameters == page.inner_text("#html_info_txt2img").strip().replace("\n\n", "\n")


def test_interrupt_never_shows_the_previous_infotext(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url)
    start(page, 77)
    wait_for_seed(page, 77)
    assert len(gallery_sources(page)) == 1
    start(page, 78, steps=150)
    page.wait_for_function("(document.querySelector('#txt2img_progress .progress') || {}).innerText?.includes('%')",
                           timeout=60000)
    page.click("#txt2img_interrupt")
    page.wait_for_selector("#txt2img_progress [data-job-state='done']", state="attached", timeout=120000)
    page.wait_for_timeout(500)
    info = page.inner_text("#html_info_txt2img")
    shown = gallery_sources(page)
    assert "Seed: 77" not in info  # the previous job's infotext is gone with its images
    if shown:
        assert "Seed: 78" in info
    else:
        assert info.strip() == "" and "Interrupted" in page.inner_text("#html_log_txt2img")
    start(page, 79)
    wait_for_seed(page, 79)
    assert len(gallery_sources(page)) == 1
