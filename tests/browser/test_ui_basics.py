"""Browser tests of the UI: token counter, a setting surviving a restart, user.css, zh_CN, styles, PNG Info."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser.conftest import open_ui, start_ui_server

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
    page.fill("#txt2img_prompt textarea", "a photo of a cat")
    page.wait_for_function("document.querySelector('#txt2img_token_counter').innerText.trim() === '5/75'",
                           timeout=20000)


def test_user_css_applies(server, browser) -> None:  # type: ignore[no-untyped-def]
    page = open_ui(browser, server.url)
    outline = page.eval_on_selector("#txt2img_generate", "e => getComputedStyle(e).outlineColor")
    assert outline == "rgb(1, 2, 3)"


def test_apply_style_writes_prompt(server, browser) -> None:  # type: ignore[no-untyped-def]
    page = open_ui(browser, server.url)
    page.fill("#txt2img_prompt textarea", "a cat")
    page.click("#txt2img_styles input")
    page.get_by_role("option", name="mystyle").click()
    page.click("#txt2img_style_apply")
    page.wait_for_function("document.querySelector('#txt2img_prompt textarea').value === 'a cat, oil painting'",
                           timeout=20000)
    assert page.input_value("#txt2img_neg_prompt textarea") == "ugly"


def test_paste_parameters(server, browser) -> None:  # type: ignore[no-untyped-def]
    page = open_ui(browser, server.url)
    page.fill("#txt2img_prompt textarea", "a dog\nNegative prompt: blurry\nSteps: 33, Sampler: Euler a, "
                                          "CFG scale: 5.5, Seed: 1234, Size: 640x448")
    page.click("#txt2img_paste")
    page.wait_for_function("document.querySelector('#txt2img_prompt textarea').value === 'a dog'", timeout=20000)
    assert page.input_value("#txt2img_neg_prompt textarea") == "blurry"
    assert page.input_value("#txt2img_seed input") == "1234"
    assert page.input_value("#txt2img_steps input[type=number]") == "33"
    assert page.input_value("#txt2img_width input[type=number]") == "640"


def test_setting_survives_restart_and_zh_cn(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    srv = start_ui_server(tmp_path)
    try:
        srv.ctx.settings.set("localization", "zh_CN")
        srv.ctx.settings.save()
    finally:
        srv.stop()
    assert json.loads((tmp_path / "config.json").read_text())["localization"] == "zh_CN"
    srv = start_ui_server(tmp_path)
    try:
        page = open_ui(browser, srv.url)
        page.wait_for_function("document.querySelector('#txt2img_generate').innerText.trim() === '生成'",
                               timeout=20000)
    finally:
        srv.stop()


def test_style_editor_saves_and_deletes(server, browser) -> None:  # type: ignore[no-untyped-def]
    page = open_ui(browser, server.url)
    page.click("#txt2img_styles_edit_button")
    page.fill("#txt2img_edit_style_name input", "watercolor")
    page.fill("#txt2img_edit_style_prompt textarea", "{prompt}, watercolor")
    page.fill("#txt2img_edit_style_neg_prompt textarea", "photo")
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
