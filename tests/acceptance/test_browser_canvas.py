"""Canvas hotkeys of the img2img image editors (A1111's canvas-zoom-and-pan extension settings, javascript/
canvas-hotkeys.js), on the app of test_browser_settings.py (its config.json binds non-default keys): zoom, reset,
brush size keys and wheel, overlap, a disabled function, pan while a key is held, tooltip, blur prompt, auto
expand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.acceptance.conftest import RunningApp, WebUIFactory, open_ui
from tests.acceptance.test_browser_settings import start_app
from tests.acceptance.test_img2img_tabs import upload
from tests.browser.conftest import fill_text

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    return start_app(webui_app)


def zoom_text(page: Any) -> str:
    return str(page.inner_text("#img2maskimg .zoom-number [role='button']")).strip()


def zoom_in(page: Any) -> str:
    """Shift + wheel until the editor shows a zoom other than 100% that stays for a second (on a loaded machine the
    editor can still fit a just-uploaded image after the first wheel event) and return it."""
    for _ in range(4):
        page.keyboard.down("Shift")
        page.mouse.wheel(0, -100)
        page.keyboard.up("Shift")
        page.wait_for_timeout(1000)
        first = zoom_text(page)
        page.wait_for_timeout(500)
        if first != "100%" and zoom_text(page) == first:
            return first
    raise AssertionError(f"Shift + wheel did not zoom the editor: {zoom_text(page)}")


def test_canvas_hotkeys(app: RunningApp, browser: Any, tmp_path: Path) -> None:
    page = open_ui(browser, app.url, height=1200)
    page.click("#tab_img2img-button")
    page.click("#img2img_inpaint_tab-button")
    fill_text(page, "img2img_prompt", "a cat")
    picture = tmp_path / "small.png"
    Image.new("RGB", (64, 64), (10, 20, 30)).save(picture)
    upload(page, "img2maskimg", picture)
    # canvas_auto_expand off: the new image shows at 100% instead of fitted to the canvas
    page.wait_for_function("document.querySelector('#img2maskimg .zoom-number [role=button]')?.innerText"
                           ".trim() === '100%'", timeout=20000)
    # canvas_show_tooltip off: no ⓘ
    assert page.locator("#img2maskimg .canvas-tooltip").count() == 0
    # canvas_blur_prompt: moving onto the canvas takes the focus off the prompt
    page.locator("#img2img_prompt textarea").focus()
    canvas = page.locator("#img2maskimg .pixi-target canvas")
    box = canvas.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 5, box["y"] + 5)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("!document.activeElement?.closest('#img2img_prompt')", timeout=5000)

    # canvas_hotkey_zoom Shift + wheel zooms in; Alt + wheel does not zoom (it adjusts the brush here)
    zoomed = zoom_in(page)
    # canvas_hotkey_reset "T" fits the canvas again (R does nothing)
    page.keyboard.press("r")
    page.wait_for_timeout(300)
    assert zoom_text(page) == zoomed
    page.keyboard.press("t")
    page.wait_for_function("(z) => document.querySelector('#img2maskimg .zoom-number [role=button]')?.innerText"
                           ".trim() !== z", arg=zoomed, timeout=5000)

    def brush() -> int:
        return int(page.evaluate("Number(document.querySelector('#img2maskimg input[type=range]')?.value ?? -1)"))

    # canvas_hotkey_grow_brush "E", canvas_hotkey_shrink_brush "Z", canvas_hotkey_adjust Alt + wheel
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.keyboard.press("e")
    start = brush()
    assert start > 0
    page.keyboard.press("e")
    assert brush() == start + 5
    page.keyboard.press("w")  # the A1111 default key is not bound any more
    page.keyboard.press("q")
    assert brush() == start + 5
    page.keyboard.press("z")
    assert brush() == start
    page.keyboard.down("Alt")
    page.mouse.wheel(0, -100)
    page.keyboard.up("Alt")
    assert brush() == start + 5

    # canvas_hotkey_overlap "Y" (Overlap enabled: canvas_disabled_functions lists only Fullscreen)
    page.keyboard.press("y")
    assert page.evaluate("document.getElementById('img2maskimg').classList.contains('canvas-overlap')")
    # Fullscreen is disabled: its key "G" does nothing
    page.keyboard.press("g")
    assert not page.evaluate("document.getElementById('img2maskimg').classList.contains('canvas-fullscreen')")
    # canvas_hotkey_move "H" held: the editor pans (its Pan tool is on) until the key is released
    page.keyboard.down("h")
    page.wait_for_function("document.querySelector('#img2maskimg button[aria-label=Pan]')?.className"
                           ".includes('highlight') || document.getElementById('img2maskimg').classList"
                           ".contains('canvas-panning')", timeout=5000)
    page.keyboard.up("h")
    assert not page.evaluate("document.getElementById('img2maskimg').classList.contains('canvas-panning')")
