"""img2img from the browser, every sub-tab (A1111 img2img modes 0–5): img2img, Sketch, Inpaint (painted mask),
Inpaint sketch (coloured strokes), Inpaint upload (image + mask files) and Batch (every image of an input folder
into an output folder, one job per file as A1111's `process_batch`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.acceptance.conftest import RunningApp, WebUIFactory, open_ui, set_number
from tests.browser.conftest import fill_text

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory, tmp_path_factory: pytest.TempPathFactory) -> RunningApp:
    running = webui_app(["--api"])
    running.wait_for_model()
    return running


def _image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path



def open_img2img(browser: Any, app: RunningApp, sub_tab: str, seed: int) -> Any:
    page = open_ui(browser, app.url, height=1000)
    page.click("#tab_img2img-button")
    page.click(f"#{sub_tab}-button")
    fill_text(page, "img2img_prompt", "a cat")
    set_number(page, "img2img_width", 64)
    set_number(page, "img2img_height", 64)
    set_number(page, "img2img_steps", 2)
    set_number(page, "img2img_seed", seed)
    return page


def upload(page: Any, elem_id: str, path: Path) -> None:
    """Upload into an image editor and wait until the canvas shows it (the editor mounts after its tab opens)."""
    for _attempt in range(3):
        page.set_input_files(f"#{elem_id} input[type=file]", str(path))
        try:
            page.wait_for_function(
                "(id) => !document.getElementById(id).innerText.includes('Upload an image')", arg=elem_id,
                timeout=5000)
            return
        except Exception:
            page.wait_for_timeout(500)
    raise AssertionError(f"the upload into #{elem_id} did not show")


def draw(page: Any, editor_id: str) -> None:
    """Drag a stroke across the middle of the editor's canvas with the brush (selected after an upload)."""
    page.wait_for_timeout(300)
    canvas = page.locator(f"#{editor_id} canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 40, y)
    page.mouse.down()
    for step in range(1, 9):
        page.mouse.move(x - 40 + step * 10, y + step * 2)
    page.mouse.up()
    page.wait_for_timeout(500)


def generate(page: Any, seed: int) -> str:
    """Generate and return the infotext shown under the gallery (fails with the notice shown, if any)."""
    page.click("#img2img_generate")
    page.wait_for_function(
        "(s) => document.querySelector('#html_info_img2img')?.innerText.includes('Seed: ' + s)"
        " || document.querySelector('#html_log_img2img .error') || document.querySelector('.toast-body.error')",
        arg=seed, timeout=120000)
    info = page.inner_text("#html_info_img2img")
    assert f"Seed: {seed}" in info, page.inner_text("#html_log_img2img") or page.inner_text("body")[-800:]
    assert page.locator("#img2img_gallery img").count() >= 1
    return info


def test_img2img_tab(app: RunningApp, browser: Any, tmp_path: Path) -> None:
    page = open_img2img(browser, app, "img2img_img2img_tab", 11)
    page.set_input_files("#img2img_image input[type=file]", str(_image(tmp_path / "in.png", (200, 30, 30))))
    page.wait_for_selector("#img2img_image img", timeout=20000)
    info = generate(page, 11)
    assert "Denoising strength: 0.75" in info and "Mask blur" not in info


def test_sketch_tab(app: RunningApp, browser: Any, tmp_path: Path) -> None:
    page = open_img2img(browser, app, "img2img_img2img_sketch_tab", 12)
    upload(page, "img2img_sketch", _image(tmp_path / "in.png", (30, 200, 30)))
    draw(page, "img2img_sketch")
    info = generate(page, 12)
    assert "Denoising strength" in info and "Mask blur" not in info


def test_inpaint_tab(app: RunningApp, browser: Any, tmp_path: Path) -> None:
    page = open_img2img(browser, app, "img2img_inpaint_tab", 13)
    upload(page, "img2maskimg", _image(tmp_path / "in.png", (30, 30, 200)))
    draw(page, "img2maskimg")
    info = generate(page, 13)
    assert "Mask blur: 4" in info  # written only when a mask was used


def test_inpaint_sketch_tab(app: RunningApp, browser: Any, tmp_path: Path) -> None:
    page = open_img2img(browser, app, "img2img_inpaint_sketch_tab", 14)
    upload(page, "inpaint_sketch", _image(tmp_path / "in.png", (220, 220, 220)))
    draw(page, "inpaint_sketch")
    info = generate(page, 14)
    assert "Mask blur: 4" in info


def test_inpaint_upload_tab(app: RunningApp, browser: Any, tmp_path: Path) -> None:
    page = open_img2img(browser, app, "img2img_inpaint_upload_tab", 15)
    page.set_input_files("#img_inpaint_base input[type=file]", str(_image(tmp_path / "in.png", (200, 200, 30))))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    mask.save(tmp_path / "mask.png")
    page.set_input_files("#img_inpaint_mask input[type=file]", str(tmp_path / "mask.png"))
    page.wait_for_selector("#img_inpaint_mask img", timeout=20000)
    info = generate(page, 15)
    assert "Mask blur: 4" in info


def test_batch_tab_writes_one_image_per_input(app: RunningApp, browser: Any, tmp_path: Path) -> None:
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    _image(inputs / "first.png", (200, 30, 30))
    _image(inputs / "second.png", (30, 30, 200), (64, 96))
    page = open_img2img(browser, app, "img2img_batch_tab", 16)
    fill_text(page, "img2img_batch_input_dir", str(inputs))
    fill_text(page, "img2img_batch_output_dir", str(outputs))
    generate(page, 16)
    written = sorted(p.name for p in outputs.iterdir())
    assert written == ["first.png", "second.png"]
    for name in written:
        with Image.open(outputs / name) as out:
            assert out.size == (64, 64)
            assert "Seed: 16" in out.info.get("parameters", "")


def test_batch_tab_missing_folder_is_a_notice(app: RunningApp, browser: Any, tmp_path: Path) -> None:
    page = open_img2img(browser, app, "img2img_batch_tab", 17)
    fill_text(page, "img2img_batch_input_dir", str(tmp_path / "nowhere"))
    page.click("#img2img_generate")
    page.wait_for_function("document.body.innerText.includes('does not exist')", timeout=30000)
