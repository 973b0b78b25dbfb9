"""Browser tests of the UI: token counter, zh_CN via the Settings tab (surviving a restart), user.css, styles,
paste, drag-and-drop of a PNG onto the prompt, Ctrl+Up attention editing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser.conftest import fill_text, open_ui, start_ui_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    data = tmp_path_factory.mktemp("ui-data")
    (data / "user.css").write_text("#txt2img_generate { outline: 7px solid rgb(1, 2, 3) !important; }")
    (data / "styles.csv").write_text("name,prompt,negative_prompt\nmystyle,\"{prompt}, oil painting\",ugly\n")
    srv = start_ui_server(data)
    yield srv
    srv.stop()


def test_token_counter_counts_prompt(server, browser) -> None:  # type: ignore[no-untyped-def]
    page = open_ui(browser, server.url)
    fill_text(page, "txt2img_prompt", "a photo of a cat")
    page.wait_for_function("document.querySelector('#txt2img_token_counter').innerText.trim() === '5/75'",
                           timeout=20000)


def test_user_css_applies(server, browser) -> None:  # type: ignore[no-untyped-def]
    page = open_ui(browser, server.url)
    # user.css arrives with the page-load event (javascript/00-assets.js), so wait for it rather than race it
    page.wait_for_function("getComputedStyle(document.querySelector('#txt2img_generate')).outlineColor"
                           " === 'rgb(1, 2, 3)'", timeout=20000)


def test_apply_style_writes_prompt(server, browser) -> None:  # type: ignore[no-untyped-def]
    page = open_ui(browser, server.url)
    fill_text(page, "txt2img_prompt", "a cat")
    page.click("#txt2img_styles input")
    page.get_by_role("option", name="mystyle").click()
    page.click("#txt2img_style_apply")
    page.wait_for_function("document.querySelector('#txt2img_prompt textarea').value === 'a cat, oil painting'",
                           timeout=20000)
    assert page.input_value("#txt2img_neg_prompt textarea") == "ugly"


def test_paste_parameters(server, browser) -> None:  # type: ignore[no-untyped-def]
    page = open_ui(browser, server.url)
    fill_text(page, "txt2img_prompt", "a dog\nNegative prompt: blurry\nSteps: 33, Sampler: Euler a, "
                                          "CFG scale: 5.5, Seed: 1234, Size: 640x448")
    page.click("#txt2img_paste")
    page.wait_for_function("document.querySelector('#txt2img_prompt textarea').value === 'a dog'", timeout=20000)
    assert page.input_value("#txt2img_neg_prompt textarea") == "blurry"
    assert page.input_value("#txt2img_seed input") == "1234"
    assert page.input_value("#txt2img_steps input[type=number]") == "33"
    assert page.input_value("#txt2img_width input[type=number]") == "640"


def test_zh_cn_through_settings_tab_survives_restart(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    srv = start_ui_server(tmp_path)
    try:
        page = open_ui(browser, srv.url)
        page.click("#tab_settings-button")
        page.locator("#tab_settings #setting_localization").wait_for(state="attached", timeout=30000)
        page.click("#settings_category_user_interface-button")
        page.locator("#tab_settings #settings_ui", has=page.locator("#setting_localization")) \
            .locator("button.label-wrap, .label-wrap").first.click()
        page.locator("#tab_settings #setting_localization input").click()
        page.get_by_role("option", name="zh_CN", exact=True).click()
        page.click("#settings_submit")
        page.wait_for_function("(document.querySelector('#settings_result')?.innerText || '').includes('localization')",
                               timeout=20000)
        assert srv.client.get("/sdapi/v1/options").json()["localization"] == "zh_CN"  # the UI's own settings
        page.click("#settings_restart_gradio")
        page.wait_for_function("(document.querySelector('#txt2img_generate')?.innerText || '').trim() === '生成'",
                               timeout=30000)
    finally:
        srv.stop()
    assert json.loads((tmp_path / "config.json").read_text())["localization"] == "zh_CN"
    srv = start_ui_server(tmp_path)
    try:
        assert srv.client.get("/sdapi/v1/options").json()["localization"] == "zh_CN"
    finally:
        srv.stop()


def test_drop_png_onto_prompt_pastes_its_infotext(server, browser) -> None:  # type: ignore[no-untyped-def]
    import base64
    import io

    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a dropped fox\nNegative prompt: dull\nSteps: 27, Sampler: Euler a, "
                                "CFG scale: 6.5, Seed: 4321, Size: 576x704")
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, "PNG", pnginfo=info)
    page = open_ui(browser, server.url)
    page.evaluate("""b64 => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
        const box = document.querySelector('#txt2img_prompt textarea');
        box.dispatchEvent(new DragEvent("dragover", { bubbles: true, cancelable: true, dataTransfer: dt }));
        box.dispatchEvent(new DragEvent("drop", { bubbles: true, cancelable: true, dataTransfer: dt }));
    }""", base64.b64encode(buffer.getvalue()).decode())
    page.wait_for_function("document.querySelector('#txt2img_prompt textarea').value === 'a dropped fox'",
                           timeout=20000)
    assert page.input_value("#txt2img_neg_prompt textarea") == "dull"
    assert page.input_value("#txt2img_steps input[type=number]") == "27"
    assert page.input_value("#txt2img_seed input") == "4321"


def test_ctrl_up_weights_selected_word(server, browser) -> None:  # type: ignore[no-untyped-def]
    page = open_ui(browser, server.url)
    box = page.locator("#txt2img_prompt textarea")
    box.fill("a cat")
    box.evaluate("e => { e.focus(); e.setSelectionRange(2, 5); }")
    page.keyboard.press("Control+ArrowUp")
    assert box.input_value() == "a (cat:1.1)"


def test_style_editor_saves_and_deletes(server, browser) -> None:  # type: ignore[no-untyped-def]
    page = open_ui(browser, server.url)
    page.click("#txt2img_styles_edit_button")
    fill_text(page, "txt2img_edit_style_name", "watercolor")
    fill_text(page, "txt2img_edit_style_prompt", "{prompt}, watercolor")
    fill_text(page, "txt2img_edit_style_neg_prompt", "photo")
    page.click("#txt2img_edit_style_save")
    styles = Path(server.data_dir) / "styles.csv"
    page.wait_for_function("true")
    for _ in range(50):
        if "watercolor" in styles.read_text():
            break
        page.wait_for_timeout(100)
    assert "{prompt}, watercolor" in styles.read_text()
    page.click("#txt2img_edit_style_delete")
    for _ in range(50):
        if "watercolor" not in styles.read_text():
            break
        page.wait_for_timeout(100)
    assert "watercolor" not in styles.read_text() and "mystyle" in styles.read_text()
