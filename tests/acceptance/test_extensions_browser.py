"""A1111-style extensions in the browser: their `ui()` (an `InputAccordion` with rows, a nested accordion and a
tool button) shows in the txt2img tab, their page script runs through A1111's page API (`onUiLoaded`,
`gradioApp()`, `opts`) and fetches a data file through `/file=`, their style.css applies, their `on_ui_tabs` tab
works, a component an `after_component` callback adds sits right after the prompt, and opening the accordion
(the A1111 way to turn such a script on) changes the generation made from the page."""

from __future__ import annotations

from typing import Any

import pytest

from tests.acceptance.conftest import RunningApp, WebUIFactory, open_ui, set_number
from tests.acceptance.test_extensions_compat import install_extensions, names
from tests.browser.conftest import fill_text

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    running = webui_app(["--api"], prepare=install_extensions)
    running.wait_for("the checkpoint loaded", lambda: "model_loaded" in names(running))
    return running



def test_page_script_style_and_extension_tab(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url)
    page.wait_for_selector("#test-prompts-js[data-tags='4']", state="attached", timeout=30000)
    assert page.inner_text("#test-prompts-js") == "separator=[, ]"
    colour = page.eval_on_selector("#test-prompts-js", "el => getComputedStyle(el).color")
    assert colour == "rgb(1, 2, 3)"
    assert page.evaluate("() => typeof get_uiCurrentTab === 'function' && get_uiCurrentTab() !== null")
    after_prompt = page.evaluate(  # between the prompt and the negative prompt (FOLLOWING = 4)
        "() => { const p = document.querySelector('#txt2img_prompt'), n = document.querySelector("
        "'#txt2img_neg_prompt'), h = document.querySelector('#recorder_after_prompt');"
        " return !!(p && n && h && (p.compareDocumentPosition(h) & 4) && (h.compareDocumentPosition(n) & 4)); }")
    assert after_prompt
    page.click("#tab_test_prompts_tab-button")
    page.fill("#tp_tab_words textarea", "hello")
    page.click("#tp_tab_show")
    page.wait_for_function("document.querySelector('#tp_tab_result textarea').value === 'hello, '", timeout=20000)


def test_opening_the_input_accordion_changes_the_generation(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url, height=1000)
    fill_text(page, "txt2img_prompt", "a cat")
    app.wait_for("before_token_counter from the prompt's token counter",
                 lambda: "before_token_counter" in names(app), timeout=30)
    for elem_id, value in (("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_steps", 2),
                           ("txt2img_seed", 7)):
        set_number(page, elem_id, value)
    accordion = page.locator("#script_txt2img_test_prompts_enabled")
    accordion.locator("button, .label-wrap").first.click()
    fill_text(page, "script_txt2img_test_prompts_suffix", "sunset")
    page.click("#txt2img_generate")
    page.wait_for_function("document.querySelector('#html_info_txt2img')?.innerText.includes('Seed: 7')",
                           timeout=120000)
    info = page.inner_text("#html_info_txt2img")
    assert "a cat, sunset" in info and 'Test prompts: "txt2img:sunsetx1"' in info, info
    accordion.locator("button, .label-wrap").first.click()  # closed: the script is off again
    fill_text(page, "txt2img_prompt", "a dog")
    page.click("#txt2img_generate")
    page.wait_for_function("document.querySelector('#html_info_txt2img')?.innerText.startsWith('a dog')",
                           timeout=120000)
    assert "Test prompts" not in page.inner_text("#html_info_txt2img")
