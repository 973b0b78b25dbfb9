"""Phone layout (issue 17 item 7) at 390×844, the app as `./webui.sh` serves it: Generate visible on the first
screen, the txt2img result gallery right under the prompt row (before the settings), every main tab button shown
(wrapped onto rows, no "…" overflow menu), nothing wider than the screen, and touch-sized buttons (≥ 40 px tall)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.acceptance.conftest import RunningApp, WebUIFactory, open_ui

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 390, 844
MEASURE = """(ids) => Object.fromEntries(ids.map(id => { const e = document.getElementById(id);
  const r = e.getBoundingClientRect(); return [id, {top: r.top + scrollY, bottom: r.bottom + scrollY,
  left: r.left, right: r.right}]; }))"""


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    return webui_app(["--api"])


def test_phone_generate_gallery_and_tabs(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url, WIDTH, HEIGHT)
    page.wait_for_timeout(500)
    at = page.evaluate(MEASURE, ["txt2img_neg_prompt", "txt2img_generate", "txt2img_gallery",
                                 "txt2img_steps"])
    assert at["txt2img_generate"]["bottom"] <= HEIGHT, at  # Generate without scrolling
    # the result gallery comes right after the prompt row, before the generation settings
    assert at["txt2img_gallery"]["top"] - at["txt2img_neg_prompt"]["bottom"] < HEIGHT / 2, at
    assert at["txt2img_gallery"]["top"] < at["txt2img_steps"]["top"], at
    assert at["txt2img_gallery"]["right"] <= WIDTH and at["txt2img_gallery"]["left"] >= 0, at
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH

    # every main tab has a visible button; no overflow menu
    for tab in ("txt2img", "img2img", "extras", "pnginfo", "modelmerger", "train", "settings", "extensions"):
        button = page.locator(f"#tab_{tab}-button")
        assert button.is_visible(), tab
        assert (button.bounding_box() or {}).get("height", 0) >= 40, tab
    assert not page.locator("#tabs > .tab-wrapper .overflow-menu button[aria-label='More tabs']").is_visible()
    page.click("#tab_settings-button")
    page.wait_for_selector("#tab_settings", state="visible", timeout=10000)
    page.click("#tab_txt2img-button")

    # touch-sized controls: every visible button of the page as first shown is at least 40 px tall
    small = page.evaluate("""() => Array.from(document.querySelectorAll('#tabs button, #quicksettings button'))
      .filter(b => b.offsetParent !== null && b.getClientRects().length)
      .map(b => [b.id || b.textContent.trim().slice(0, 20), b.getBoundingClientRect().height])
      .filter(([, h]) => h < 40)""")
    assert not small, small
    page.close()
