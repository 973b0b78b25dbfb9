"""UI polish of issue 17 item 8, in the app as `./webui.sh` serves it (desktop size):

* Interrupt/Skip take the Generate button's place while a job runs (same box, nothing moves) and Generate returns;
* the top bar shows no help lines under its boxes: the help is the box's tooltip (title);
* every icon button (text = one emoji/symbol) has a tooltip, A1111 hints.js wording;
* icon buttons draw a glyph without a colour-emoji font (this machine has none): an SVG icon, text hidden;
* the ✏️ style editor opens on the selected style with its name, prompt and negative prompt filled.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat

from tests.acceptance.conftest import RunningApp, WebUIFactory, open_ui, set_number
from tests.browser.conftest import fill_text

pytestmark = pytest.mark.browser

SYMBOL_BUTTONS = """() => Array.from(document.querySelectorAll('button'))
  .filter(b => b.offsetParent !== null && b.getClientRects().length)
  .filter(b => { const t = b.textContent.trim(); return t && [...t.replace(/\\uFE0F/g, '')].length === 1
                 && !/[\\p{L}\\p{N}]/u.test(t); })
  .map(b => ({id: b.id, text: b.textContent.trim(), title: b.title}))"""


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    def styles(data: Path) -> None:
        (data / "styles.csv").write_text('name,prompt,negative_prompt\n"Cat style","a cat, {prompt}","blurry"\n'
                                         '"Dog style","a dog","ugly"\n', encoding="utf-8")

    running = webui_app(["--api"], prepare=styles)
    running.wait_for_model()
    return running


def box(page: Any, selector: str) -> dict[str, float]:
    """The element's box in page coordinates (independent of scrolling)."""
    found: dict[str, float] | None = page.evaluate(
        "(s) => { const e = document.querySelector(s); if (!e || !e.getClientRects().length) return null;"
        " const r = e.getBoundingClientRect(); return {x: r.left + scrollX, y: r.top + scrollY, width: r.width,"
        " height: r.height}; }", selector)
    assert found is not None, f"{selector} is not displayed"
    return found


def test_interrupt_and_skip_replace_generate_in_place(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url, 1440, 1000)
    assert not page.locator("#txt2img_interrupt").is_visible()
    fill_text(page, "txt2img_prompt", "a slow cat")
    for elem_id, value in (("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_steps", 60),
                           ("txt2img_batch_count", 2), ("txt2img_seed", 5)):
        set_number(page, elem_id, value)
    before = box(page, "#txt2img_generate")
    prompt_before = box(page, "#txt2img_prompt")
    page.click("#txt2img_generate")
    page.wait_for_selector("#txt2img_interrupt", state="visible", timeout=30000)
    page.wait_for_function("getComputedStyle(document.querySelector('#txt2img_generate')).visibility === 'hidden'",
                           timeout=5000)  # after the button's own transition
    interrupt, skip = box(page, "#txt2img_interrupt"), box(page, "#txt2img_skip")
    # the two halves cover exactly the Generate button's box
    assert abs(interrupt["y"] - before["y"]) <= 1 and abs(interrupt["height"] - before["height"]) <= 1
    assert abs(skip["y"] - before["y"]) <= 1 and abs(skip["height"] - before["height"]) <= 1
    assert abs(interrupt["x"] - before["x"]) <= 1
    assert abs(skip["x"] + skip["width"] - (before["x"] + before["width"])) <= 1
    assert interrupt["x"] + interrupt["width"] <= skip["x"] + 1
    assert box(page, "#txt2img_prompt") == prompt_before  # nothing moved
    page.click("#txt2img_interrupt")
    page.wait_for_selector("#txt2img_interrupt", state="hidden", timeout=240000)
    page.wait_for_function("getComputedStyle(document.querySelector('#txt2img_generate')).visibility === 'visible'",
                           timeout=10000)
    assert box(page, "#txt2img_generate") == before
    page.close()


def test_top_bar_help_is_a_tooltip_and_icon_buttons_have_titles(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url, 1440, 1000)
    page.wait_for_function("document.querySelector('#setting_sd_vae')?.title.includes('choose VAE model')",
                           timeout=10000)
    assert page.locator("#quicksettings .info-text").count() >= 1  # the help exists …
    assert not any(e.is_visible() for e in page.locator("#quicksettings .info-text").all())  # … but not as lines
    assert "ignore last layers of CLIP" in (page.get_attribute("#setting_CLIP_stop_at_last_layers", "title") or "")

    seen: dict[str, str] = {}
    for tab in ("txt2img", "img2img", "extras", "pnginfo", "train"):
        page.click(f"#tab_{tab}-button")
        page.wait_for_selector(f"#tab_{tab}", state="visible", timeout=10000)
        page.wait_for_timeout(300)
        for button in page.evaluate(SYMBOL_BUTTONS):
            assert button["title"].strip(), f"icon button {button} on {tab} has no tooltip"
            seen[button["id"] or button["text"]] = button["title"]
    for elem_id in ("refresh_sd_model_checkpoint", "txt2img_paste", "txt2img_clear_prompt", "txt2img_style_apply",
                    "txt2img_styles_edit_button", "txt2img_random_seed", "txt2img_reuse_seed",
                    "txt2img_res_switch_btn", "save_txt2img", "save_zip_txt2img"):
        assert elem_id in seen, f"{elem_id} was not found as an icon button"
    assert seen["txt2img_random_seed"].startswith("Set seed to -1")
    page.close()


def test_icon_buttons_draw_a_glyph_without_an_emoji_font(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url, 1440, 1000)
    page.wait_for_selector("#txt2img_random_seed[data-sd-icon]", timeout=10000)
    for elem_id in ("refresh_sd_model_checkpoint", "txt2img_paste", "txt2img_clear_prompt", "txt2img_style_apply",
                    "txt2img_styles_edit_button", "txt2img_random_seed", "txt2img_reuse_seed",
                    "txt2img_res_switch_btn", "save_txt2img", "save_zip_txt2img"):
        style = page.evaluate("(id) => { const b = document.getElementById(id); const a = getComputedStyle(b, "
                              "'::after'); return {fill: getComputedStyle(b).webkitTextFillColor, "
                              "mask: a.webkitMaskImage || a.maskImage, w: a.width}; }", elem_id)
        assert style["fill"] in ("rgba(0, 0, 0, 0)", "transparent"), (elem_id, style)  # the tofu box is hidden
        assert "svg" in style["mask"], (elem_id, style)
        shot = Image.open(io.BytesIO(page.locator(f"#{elem_id}").screenshot())).convert("L")
        w, h = shot.size
        centre = shot.crop((w // 4, h // 4, w - w // 4, h - h // 4))
        edge = ImageStat.Stat(shot.crop((1, 1, 4, 4))).mean[0]
        drawn = sum(1 for v in centre.tobytes() if abs(v - edge) > 60)
        assert drawn >= 8, f"#{elem_id} shows no glyph ({drawn} pixels differ from its background)"
    page.close()


def test_style_editor_opens_on_the_selected_style(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url, 1440, 1000)
    page.click("#txt2img_styles input")
    page.locator("ul[role=listbox] li", has_text="Dog style").first.click()
    page.keyboard.press("Escape")
    page.click("#txt2img_styles_edit_button")
    page.wait_for_function("document.querySelector('#txt2img_edit_style_prompt textarea')?.value === 'a dog'",
                           timeout=10000)
    assert page.input_value("#txt2img_edit_style_name input") == "Dog style"
    assert page.input_value("#txt2img_edit_style_neg_prompt textarea") == "ugly"
    page.close()
