"""Settings read by the page's scripts (A1111 `opts.<key>` in javascript/): each group is set in config.json (or
over `/sdapi/v1/options`, then the page is reloaded, as a user reloads after Apply settings) and checked in
Chromium on the app `create_app` builds: the full page image viewer (javascript/lightbox.js), prompt key editing
(edit-attention.js, edit-order.js), the progress/preview behaviour (progress-ui.js, modules/ui/gallery.py)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png, open_ui, set_number
from tests.acceptance.test_img2img_tabs import upload
from tests.browser.conftest import fill_text
from tests.integration.test_extra_networks_pipeline import write_lora

pytestmark = pytest.mark.browser

CONFIG = {
    "js_modal_lightbox_initially_zoomed": False, "sd_webui_modal_lightbox_icon_opacity": 0.3,
    "sd_webui_modal_lightbox_toolbar_opacity": 0.4, "js_modal_lightbox_gamepad": True,
    "js_modal_lightbox_gamepad_repeat": 100000, "js_live_preview_in_modal_lightbox": True,
    "keyedit_delimiters": ",", "keyedit_delimiters_whitespace": [],
    "show_progressbar": False, "gallery_height": "640px", "disable_token_counters": True,
    "live_previews_image_format": "jpeg", "show_progress_every_n_steps": 1,
    "live_preview_refresh_period": 200, "img2img_editor_height": 500,
    "img2img_sketch_default_brush_color": "#ff0000", "img2img_inpaint_mask_brush_color": "#00ff00",
    "img2img_inpaint_sketch_default_brush_color": "#0000ff",
    "extra_networks_card_width": 200, "extra_networks_card_height": 150, "extra_networks_card_text_scale": 1.5,
    "extra_networks_card_show_desc": False, "extra_networks_tree_view_style": "Tree",
    "extra_networks_tree_view_default_enabled": False, "extra_networks_tree_view_default_width": 250,
    "canvas_hotkey_zoom": "Shift", "canvas_hotkey_adjust": "Alt", "canvas_hotkey_shrink_brush": "Z",
    "canvas_hotkey_grow_brush": "E", "canvas_hotkey_move": "H", "canvas_hotkey_fullscreen": "G",
    "canvas_hotkey_reset": "T", "canvas_hotkey_overlap": "Y", "canvas_show_tooltip": False,
    "live_preview_fast_interrupt": True, "show_progress_type": "Approx cheap", "canvas_blur_prompt": True, "canvas_auto_expand": False, "canvas_disabled_functions": ["Fullscreen"],
}


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    return start_app(webui_app)


def start_app(webui_app: WebUIFactory) -> RunningApp:
    """The app with CONFIG in its config.json and an SD1 LoRA, its checkpoint loaded."""
    def prepare(data_dir: Path) -> None:
        (data_dir / "config.json").write_text(json.dumps(CONFIG), encoding="utf-8")
        (data_dir / "models" / "Lora").mkdir(parents=True, exist_ok=True)
        write_lora(data_dir / "models" / "Lora" / "mynet.safetensors")  # an SD1 LoRA: its card says "SD1"
        (data_dir / "models" / "Lora" / "sub").mkdir()
        (data_dir / "models" / "Lora" / "sub" / "other.json").write_text(  # user metadata (A1111 editor)
            json.dumps({"description": "<b>bold</b> words"}), encoding="utf-8")
        write_lora(data_dir / "models" / "Lora" / "sub" / "other.safetensors", seed=2)

    running = webui_app(["--api"], prepare=prepare)
    running.wait_for_model()
    return running


def set_options(app: RunningApp, **values: Any) -> None:
    assert app.client.post("/sdapi/v1/options", json=values).status_code == 200


def start_job(page: Any, steps: int, size: int = 64, batch: int = 1) -> None:
    fill_text(page, "txt2img_prompt", "a cat")
    for elem_id, value in (("txt2img_width", size), ("txt2img_height", size), ("txt2img_steps", steps),
                           ("txt2img_batch_size", batch)):
        set_number(page, elem_id, value)
    page.click("#txt2img_generate")


def wait_done(page: Any) -> None:
    page.wait_for_function("document.querySelector('#html_info_txt2img')?.innerText.includes('Seed:')",
                           timeout=240000)


def open_viewer(page: Any) -> None:
    """Select the first result, then click the large image: the viewer opens on it."""
    page.locator("#txt2img_gallery .thumbnail-item img").first.click()
    page.locator("#txt2img_gallery [data-testid='detailed-image']").click()
    page.wait_for_selector("#lightboxModal", state="visible", timeout=10000)


def test_full_page_viewer(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url, height=1000)
    start_job(page, 2, batch=3)
    wait_done(page)
    open_viewer(page)
    srcs = page.eval_on_selector_all("#txt2img_gallery .grid-container .thumbnail-item img",
                                     "els => els.map(e => e.src)")
    assert len(srcs) == 4  # the grid and three images
    assert page.get_attribute("#modalImage", "src") == srcs[0]
    # js_modal_lightbox_initially_zoomed off: fit to the screen; a click on the image zooms in
    assert not page.evaluate("document.getElementById('lightboxModal').classList.contains('lightbox-zoomed')")
    page.click("#modalImage")
    assert page.evaluate("document.getElementById('lightboxModal').classList.contains('lightbox-zoomed')")
    # icon and tool bar opacity from the settings
    assert page.evaluate("getComputedStyle(document.getElementById('modal_close')).opacity") == "0.3"
    assert page.evaluate("getComputedStyle(document.querySelector('#lightboxModal .modalControls')).opacity") == "0.4"
    page.keyboard.press("ArrowRight")
    assert page.get_attribute("#modalImage", "src") == srcs[1]
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert page.get_attribute("#modalImage", "src") == srcs[3]  # wraps around
    # gamepad: held right steps once, then waits js_modal_lightbox_gamepad_repeat (100 s here) before repeating
    page.evaluate("navigator.getGamepads = () => [{axes: [1, 0], buttons: []}];"
                  "window.dispatchEvent(new Event('gamepadconnected'))")
    page.wait_for_function("document.getElementById('lightboxModal').dataset.moves === '4'", timeout=5000)
    page.wait_for_timeout(800)
    assert page.evaluate("document.getElementById('lightboxModal').dataset.moves") == "4"
    assert page.get_attribute("#modalImage", "src") == srcs[0]
    page.evaluate("navigator.getGamepads = () => [null]")
    page.keyboard.press("Escape")
    page.wait_for_selector("#lightboxModal", state="hidden", timeout=5000)

    # js_modal_lightbox_initially_zoomed on (A1111 default): opens zoomed
    set_options(app, js_modal_lightbox_initially_zoomed=True, js_modal_lightbox_gamepad=False)
    page.reload()
    page.wait_for_selector("body[data-sd-ready='1']", timeout=60000)
    start_job(page, 2)
    wait_done(page)
    open_viewer(page)
    assert page.evaluate("document.getElementById('lightboxModal').classList.contains('lightbox-zoomed')")
    page.keyboard.press("Escape")

    # js_modal_lightbox off: clicking the image opens no viewer
    set_options(app, js_modal_lightbox=False)
    try:
        page.reload()
        page.wait_for_selector("body[data-sd-ready='1']", timeout=60000)
        start_job(page, 2)
        wait_done(page)
        page.locator("#txt2img_gallery .thumbnail-item img").first.click()
        page.locator("#txt2img_gallery [data-testid='detailed-image']").click()
        page.wait_for_timeout(500)
        assert not page.locator("#lightboxModal").is_visible()
    finally:
        set_options(app, js_modal_lightbox=True)


def press_in_prompt(page: Any, text: str, cursor: int, key: str) -> str:
    box = page.locator("#txt2img_prompt textarea")
    fill_text(page, "txt2img_prompt", text)
    box.focus()
    page.evaluate("(c) => document.querySelector('#txt2img_prompt textarea').setSelectionRange(c, c)", cursor)
    box.press(key)
    return str(box.input_value())


def test_prompt_key_editing(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url)
    # keyedit_delimiters "," without whitespace: the word under the cursor runs to the commas
    assert press_in_prompt(page, "red cat, dog", 5, "Control+ArrowUp") == "(red cat:1.1), dog"
    assert press_in_prompt(page, "a\nb, c", 3, "Control+ArrowUp") == "(a\nb:1.1), c"
    # keyedit_move on: Alt+Left/Right move the element under the cursor
    assert press_in_prompt(page, "red cat, dog, bird", 3, "Alt+ArrowRight") == "dog, red cat, bird"
    assert press_in_prompt(page, "red cat, dog, bird", 15, "Alt+ArrowLeft") == "red cat, bird, dog"

    set_options(app, keyedit_delimiters=".,\\/!?%^*;:{}=`~() ", keyedit_delimiters_whitespace=["Line Feed"],
                keyedit_move=False)
    try:
        page.reload()
        page.wait_for_selector("body[data-sd-ready='1']", timeout=60000)
        assert press_in_prompt(page, "red cat, dog", 5, "Control+ArrowUp") == "red (cat:1.1), dog"
        assert press_in_prompt(page, "a\nb, c", 3, "Control+ArrowUp") == "a\n(b:1.1), c"
        assert press_in_prompt(page, "red cat, dog, bird", 3, "Alt+ArrowRight") == "red cat, dog, bird"
    finally:
        set_options(app, keyedit_delimiters=",", keyedit_delimiters_whitespace=[], keyedit_move=True)


def test_progress_and_live_preview(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url, height=1000)
    # disable_token_counters and gallery_height act on the page as it loads
    assert page.evaluate("getComputedStyle(document.getElementById('txt2img_token_counter')).display") == "none"
    assert page.evaluate("document.getElementById('txt2img_gallery').getBoundingClientRect().height") == 640
    title = page.title()
    page.evaluate("window.seen = {titles: new Set(), bars: 0, gradio: 0};"
                  "setInterval(() => { seen.titles.add(document.title);"
                  " const bar = document.querySelector('#txt2img_progress .progressDiv');"
                  " if (bar && bar.offsetParent !== null) seen.bars++;"
                  " const tracker = document.querySelector('#txt2img_gallery [data-testid=status-tracker]');"
                  " if (tracker && tracker.checkVisibility() && (tracker.classList.contains('generating') ||"
                  " tracker.innerText.includes('processing'))) seen.gradio++; }, 50)")
    start_job(page, 5)
    page.wait_for_function("document.querySelector('#txt2img_preview img')?.src", timeout=120000)
    # live_previews_image_format "jpeg": the preview sent to the page is a JPEG file
    src = page.get_attribute("#txt2img_preview img", "src")
    assert src and src.split("?")[0].endswith(".jpeg")
    # prevent_screen_sleep_during_generation (on by default): a wake lock is asked for while the job runs
    assert page.evaluate("document.body.dataset.wakeLock") in {"requested", "held", "refused"}
    # show_progress_in_title (on by default): "[n% ETA: …] <title>"
    page.wait_for_function("document.title.startsWith('[') && document.title.includes('%')", timeout=60000)
    wait_done(page)
    page.wait_for_function("(t) => document.title === t", arg=title, timeout=5000)
    assert page.evaluate("document.body.dataset.wakeLock") in {"released", "refused"}
    assert page.evaluate("seen.bars") == 0  # show_progressbar off: the bar is hidden
    assert page.evaluate("seen.gradio") == 0  # Gradio's own progress is hidden (A1111 css_hide_progressbar)

    # the other way round, and a refresh period longer than the job: no progress update reaches the page
    set_options(app, show_progress_in_title=False, prevent_screen_sleep_during_generation=False,
                show_progressbar=True, live_preview_refresh_period=600000,
                disable_token_counters=False, gallery_height="")
    try:
        page.reload()
        page.wait_for_selector("body[data-sd-ready='1']", timeout=60000)
        assert page.evaluate("getComputedStyle(document.getElementById('txt2img_token_counter')).display") != "none"
        assert page.evaluate("document.getElementById('txt2img_gallery').getBoundingClientRect().height") != 640
        page.evaluate("window.seen = {titles: new Set(), percents: 0, previews: 0, bars: 0};"
                      "setInterval(() => { seen.titles.add(document.title);"
                      " if (/\\d+%/.test(document.querySelector('#txt2img_progress')?.innerText || '')) seen.percents++;"
                      " if (document.querySelector('#txt2img_preview img')?.src) seen.previews++;"
                      " if (document.querySelector('#txt2img_progress [data-job-state=running]')) seen.bars++; }, 50)")
        start_job(page, 3)
        wait_done(page)
        assert page.evaluate("seen.bars") > 0  # the job was seen running
        assert page.evaluate("Array.from(seen.titles)") == [title]
        assert page.evaluate("document.body.dataset.wakeLock") is None
        assert page.evaluate("seen.percents") == 0 and page.evaluate("seen.previews") == 0
    finally:
        set_options(app, live_preview_refresh_period=200)


def test_live_preview_in_viewer(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url, height=1000)
    start_job(page, 2)
    wait_done(page)
    set_number(page, "txt2img_steps", 4)
    open_viewer(page)
    first = page.get_attribute("#modalImage", "src")
    page.evaluate("document.getElementById('txt2img_generate').click()")
    # js_live_preview_in_modal_lightbox: the open viewer follows the live preview
    page.wait_for_function("document.getElementById('lightboxModal').dataset.live === '1'", timeout=120000)
    src = page.get_attribute("#modalImage", "src")
    assert src != first and src and src.split("?")[0].endswith(".jpeg")
    wait_done(page)


def test_gradio_progress_with_no_progressbar_hiding(webui_app: WebUIFactory, browser: Any) -> None:
    """`--no-progressbar-hiding`: Gradio's own progress ("processing | 1.2s", then the "generating" border while
    results stream) shows on the outputs while a job runs; A1111 hides it otherwise (checked in
    test_progress_and_live_preview)."""
    app = webui_app(["--api", "--no-progressbar-hiding"])
    app.wait_for_model()
    page = open_ui(browser, app.url, height=1000)
    page.evaluate("window.seen = 0; setInterval(() => { const t = document.querySelector("
                  "'#txt2img_gallery [data-testid=status-tracker]');"
                  " if (t && t.checkVisibility() && (t.classList.contains('generating') ||"
                  " t.innerText.includes('processing'))) seen++; }, 50)")
    start_job(page, 3)
    wait_done(page)
    assert page.evaluate("seen") > 0


def editor_brush(page: Any, elem_id: str) -> dict[str, Any]:
    """The brush the page's image editor `elem_id` was given (its Gradio component config)."""
    brush: dict[str, Any] = page.evaluate(
        "(id) => window.gradio_config.components.find(c => c.props && c.props.elem_id === id).props.brush", elem_id)
    return brush


def test_image_editor_height_and_brushes(app: RunningApp, browser: Any, tmp_path: Path) -> None:
    page = open_ui(browser, app.url, height=1200)
    page.click("#tab_img2img-button")
    page.click("#img2img_img2img_sketch_tab-button")
    black = tmp_path / "black.png"
    Image.new("RGB", (64, 64), (0, 0, 0)).save(black)
    fill_text(page, "img2img_prompt", "a cat")  # gives the sub-tab time to mount its editor
    upload(page, "img2img_sketch", black)
    # img2img_editor_height 500 (A1111 default 720)
    height = page.evaluate("document.getElementById('img2img_sketch').getBoundingClientRect().height")
    assert 480 <= height < 700, height
    # img2img_sketch_default_brush_color: the Sketch brush starts red
    assert editor_brush(page, "img2img_sketch")["default_color"] == "#ff0000"
    assert page.evaluate("document.querySelector('#img2img_sketch button[aria-label=Color]').style.color")\
        == "rgb(255, 0, 0)"
    # the Inpaint mask brush has the one colour img2img_inpaint_mask_brush_color; Inpaint sketch starts blue
    mask = editor_brush(page, "img2maskimg")
    assert mask["colors"] == ["#00ff00"] and mask["color_mode"] == "fixed"
    assert editor_brush(page, "inpaint_sketch")["default_color"] == "#0000ff"


def card_look(page: Any) -> dict[str, Any]:
    return dict(page.evaluate(
        "() => { const c = document.querySelector('#txt2img_lora_cards .extra-network-card');"
        " const r = c.getBoundingClientRect(); const name = c.querySelector('.extra-network-name');"
        " const desc = c.querySelector('.extra-network-desc');"
        " return {width: r.width, height: r.height, desc: !!desc && desc.checkVisibility(),"
        " scale: parseFloat(getComputedStyle(name).fontSize) / parseFloat(getComputedStyle(c).fontSize)}; }"))


def test_extra_network_cards(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url)
    page.locator("#txt2img_extra_tabs button[role='tab']", has_text="Lora").click()
    page.wait_for_selector("#txt2img_lora_cards .extra-network-card", timeout=30000)
    look = card_look(page)
    assert (look["width"], look["height"], look["desc"]) == (200, 150, False)
    assert abs(look["scale"] - 1.5) < 0.01

    set_options(app, extra_networks_card_width=0, extra_networks_card_height=0, extra_networks_card_text_scale=1,
                extra_networks_card_show_desc=True)
    try:
        page.reload()
        page.wait_for_selector("body[data-sd-ready='1']", timeout=60000)
        page.locator("#txt2img_extra_tabs button[role='tab']", has_text="Lora").click()
        page.wait_for_selector("#txt2img_lora_cards .extra-network-card", timeout=30000)
        look = card_look(page)
        assert look["width"] != 200 and look["height"] != 150 and look["desc"]
        assert abs(look["scale"] - 1) < 0.01
    finally:
        set_options(app, extra_networks_card_width=200, extra_networks_card_height=150,
                    extra_networks_card_text_scale=1.5, extra_networks_card_show_desc=False)



def shown_cards(page: Any) -> list[str]:
    return sorted(page.evaluate("Array.from(document.querySelectorAll('#txt2img_lora_cards .extra-network-card'))"
                                ".filter(c => c.checkVisibility()).map(c => c.dataset.name)"))


def test_extra_network_directory_view(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url)
    page.locator("#txt2img_extra_tabs button[role='tab']", has_text="Lora").click()
    page.wait_for_selector("#txt2img_lora_cards .extra-network-dirs", state="attached", timeout=30000)
    panel = page.locator("#txt2img_lora_cards .extra-network-dirs")
    # extra_networks_tree_view_default_enabled off: hidden until the 🗂 button shows it
    assert not panel.is_visible()
    page.click("#txt2img_lora_cards .extra-network-tree-toggle")
    assert panel.is_visible()
    # extra_networks_tree_view_style "Tree", extra_networks_tree_view_default_width 250
    assert panel.get_attribute("data-style") == "tree" and panel.locator("details").count() == 1
    assert (panel.bounding_box() or {}).get("width") == 250
    assert shown_cards(page) == ["mynet", "other"]
    page.click("#txt2img_lora_cards .extra-network-folder[data-folder='sub']")
    assert shown_cards(page) == ["other"]
    page.click("#txt2img_lora_cards .extra-network-folder[data-folder='sub']")
    assert shown_cards(page) == ["mynet", "other"]

    set_options(app, extra_networks_tree_view_style="Dirs", extra_networks_tree_view_default_enabled=True,
                extra_networks_tree_view_default_width=180)
    try:
        page.reload()
        page.wait_for_selector("body[data-sd-ready='1']", timeout=60000)
        page.locator("#txt2img_extra_tabs button[role='tab']", has_text="Lora").click()
        page.wait_for_selector("#txt2img_lora_cards .extra-network-dirs", state="visible", timeout=30000)
        assert panel.get_attribute("data-style") == "dirs" and panel.locator("details").count() == 0
        assert (panel.bounding_box() or {}).get("width") == 180
    finally:
        set_options(app, extra_networks_tree_view_style="Tree", extra_networks_tree_view_default_enabled=False,
                    extra_networks_tree_view_default_width=250)


def interrupted_image_size(app: RunningApp) -> tuple[int, int]:
    """Start a long txt2img over the API, interrupt it once sampling runs, and return the image's size."""
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.update(app.txt2img(steps=40, seed=5)))
    worker.start()
    app.wait_for("sampling to start", lambda: float(app.client.get("/sdapi/v1/progress").json()["progress"]) > 0,
                 timeout=120)
    assert app.client.post("/sdapi/v1/interrupt").status_code == 200
    worker.join(timeout=120)
    return decode_png(result["images"][0]).size


def test_live_preview_fast_interrupt(app: RunningApp) -> None:
    """With `live_preview_fast_interrupt` an interrupted job is decoded with the live-preview method (here
    "Approx cheap": one pixel per latent, smaller than the image by the VAE's scale factor) instead of the VAE
    (A1111 `samples_to_images_tensor`)."""
    width, height = interrupted_image_size(app)
    assert width == height and width < 64 and 64 % width == 0
    set_options(app, live_preview_fast_interrupt=False)
    try:
        assert interrupted_image_size(app) == (64, 64)
    finally:
        set_options(app, live_preview_fast_interrupt=True)


def test_card_description_as_html(app: RunningApp, browser: Any) -> None:
    """The card shows the user's description (`<stem>.json` "description"): as HTML with
    `extra_networks_card_description_is_html`, as text otherwise (A1111 default)."""
    def description(page: Any) -> tuple[str, int]:
        page.locator("#txt2img_extra_tabs button[role='tab']", has_text="Lora").click()
        card = "#txt2img_lora_cards .extra-network-card[data-name='other'] .extra-network-desc"
        page.wait_for_selector(card, state="visible", timeout=30000)
        return str(page.inner_text(card)).strip(), page.locator(card + " b").count()

    set_options(app, extra_networks_card_show_desc=True, extra_networks_card_description_is_html=True)
    try:
        page = open_ui(browser, app.url)
        assert description(page) == ("bold words", 1)
        set_options(app, extra_networks_card_description_is_html=False)
        page.reload()
        page.wait_for_selector("body[data-sd-ready='1']", timeout=60000)
        assert description(page) == ("<b>bold</b> words", 0)
    finally:
        set_options(app, extra_networks_card_show_desc=False, extra_networks_card_description_is_html=False)
