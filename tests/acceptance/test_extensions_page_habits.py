"""What real A1111 extensions do that a first run of them against this web UI found missing (the audit of issue 13:
a1111-sd-webui-tagcomplete, stable-diffusion-webui-images-browser, sd-dynamic-prompts), with a test extension
written the same way (tests/fixtures/extensions/sd-webui-page-habits) used in the browser and over HTTP:

* its page script reads back, as `file=tmp/<name>`, a file its Python side wrote to the install's `tmp/` folder,
  calls `gradioApp().getElementById(...)`, and extends the page's global `titles` hints;
* from `onUiLoaded` it finds the elements of its own tab (and of its sub-tabs) before that tab was ever opened, also
  a component made with Gradio 3's `visible=False` (kept in the page, hidden);
* the tab uses Gradio 3 nested `gr.Tabs`/`gr.Tab` and `.click(...).then(fn=None, _js=...)`;
* `scripts.list_scripts` and `modules.ui_common.save_files` answer, and so do the other A1111 module names
  extensions import (`devices`, `sd_models`, `hashes`, `launch_utils`, `prompt_parser`, `infotext_utils`,
  `api.models`, `processing`, `images`, `shared.state`, `opts.onchange`);
* a second tab that raises halfway through building its own `gr.Blocks` is reported and the page is built anyway;
* its `localizations/habits-xx.json` is a choice of the `localization` setting and translates the page.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import RunningApp, WebUIFactory, open_ui

pytestmark = pytest.mark.browser

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "extensions" / "sd-webui-page-habits"
TMP_FILE = Path(__file__).resolve().parents[2] / "tmp" / "sd-webui-page-habits-path.txt"


def install(data_dir: Path) -> None:
    shutil.copytree(FIXTURE, data_dir / "extensions" / FIXTURE.name)


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> Any:
    running = webui_app(["--api"], prepare=install)
    yield running
    TMP_FILE.unlink(missing_ok=True)  # what the extension wrote to the install's tmp/ (A1111's place for it)


def test_a_tab_that_breaks_while_built_is_reported_and_the_page_is_built(app: RunningApp) -> None:
    assert "broken_tab.py/ui_tabs" in app.console and "this tab breaks while it is built" in app.console
    config = app.client.get("/config").json()
    elem_ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    assert {"tab_habits_tab", "habits_go", "settings_submit"} <= elem_ids, sorted(e for e in elem_ids if e)[:50]
    assert "tab_habits_broken_tab" not in elem_ids


def test_list_scripts_and_save_files(app: RunningApp) -> None:
    info = app.client.get("/habits/v1/info").json()
    assert {"habits.py", "broken_tab.py"} <= set(info["scripts"]) and info["html"] == "<p>a<br>\nb</p>"
    saved = app.client.post("/habits/v1/save", json={"infotext": "habit\nSteps: 2, Seed: 5"}).json()
    assert saved["message"].startswith("<p>Saved: ") and saved["files"]
    image = Path(saved["files"][0])
    assert image.is_file() and image.is_relative_to(app.data_dir / "log" / "images")
    assert (image.parent / "log.csv").is_file()


def test_a1111_module_names_answer_from_the_running_app(app: RunningApp) -> None:
    names = app.client.get("/habits/v1/names").json()
    assert names["device"] == "cpu" and names["checkpoints"][0].startswith("sd1.safetensors")
    assert names["selected"].startswith("sd1.safetensors") and len(names["sha256"]) == 64
    assert names["git_tag"] and names["attention"] == [["a ", 1.0], ["b", 1.5]]
    assert names["parsed"]["Prompt"] == "a cat" and names["parsed"]["Steps"] == "3"
    assert names["api_field"] is True and names["fixed_seed"] >= 0 and names["processed"] == "Processed"
    assert names["save_image"] is True and names["interrupted"] is False and names["changes"] == []
    assert app.client.post("/sdapi/v1/options", json={"habits_level": 4}).status_code == 200
    assert app.client.get("/habits/v1/names").json()["changes"] == [4]  # opts.onchange fired with the new value


def test_page_script_habits(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.wait_for_selector("#habits-js[data-words]", state="attached", timeout=30000)
    marker = page.locator("#habits-js")
    assert marker.get_attribute("data-words") == "3"  # tmp/ path file, then the extension's own words.txt
    assert marker.get_attribute("data-tab-found") == "true"  # found from onUiLoaded, tab never opened
    assert marker.get_attribute("data-inner-found") == "true"  # and the content of its unselected sub-tab
    assert marker.get_attribute("data-hidden-flag") == "true"  # a Gradio 3 visible=False box is in the page
    assert page.evaluate("() => titles['Habit word']") == "A word the habits extension upper-cases"
    assert page.is_visible("#txt2img_prompt")  # the page is back on the tab it opened with
    page.click("#tab_habits_tab-button")
    page.wait_for_function("() => [...document.querySelectorAll('#habits_word span, #habits_word label')]"
                           ".some(e => e.title === 'A word the habits extension upper-cases')", timeout=10000)
    page.wait_for_selector("#habits_word textarea", state="visible", timeout=10000)  # its first sub-tab is shown
    assert not page.is_visible("#habits_hidden_flag")
    tabs = page.evaluate("() => [...document.querySelectorAll('#habits_inner_tabs button[role=tab]')].map(b => b.innerText)")
    assert tabs == ["Inner A", "Inner B"], tabs  # the text box placed directly in the Tabs is not taken for a tab
    page.get_by_role("tab", name="Inner B").click()  # a Gradio 3 gr.Tab inside the extension's gr.Tabs
    page.wait_for_selector("#habits_inner_b_text textarea", state="visible", timeout=10000)
    page.click("#habits_go")
    page.wait_for_function("() => document.querySelector('#habits_result textarea').value === 'RED'", timeout=30000)
    page.wait_for_selector("body[data-habits-then='1']", state="attached", timeout=10000)  # .then(_js=...)
    assert not errors, errors


def test_extension_localization_is_offered_and_applied(app: RunningApp, browser: Any) -> None:
    answer = app.client.post("/sdapi/v1/options", json={"localization": "habits-xx"})  # only the extension has it
    assert answer.status_code == 200, answer.text
    try:
        page = open_ui(browser, app.url)
        assert page.evaluate("() => window.localization['Habit word']") == "Gewohnheitswort"
        page.click("#tab_habits_tab-button")
        page.wait_for_function("() => document.querySelector('#habits_word').innerText.includes('Gewohnheitswort')",
                               timeout=20000)
    finally:
        app.client.post("/sdapi/v1/options", json={"localization": "None"})
