"""Settings tab special pages (A1111 `ui_settings`): Sysinfo downloads the system-information JSON (command line
masked), Actions unloads / reloads the checkpoint and hashes every checkpoint, "Show all pages" shows every
category's settings on one page, Defaults lists changed settings and reverts the chosen ones, Licenses shows the
licenses page."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.acceptance.conftest import RunningApp, WebUIFactory, open_ui

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    running = webui_app(["--api"], checkpoints={"alpha.safetensors": "sd1", "beta.safetensors": "sd1"})
    running.wait_for_model()
    return running


def open_settings_page(browser: Any, app: RunningApp, page_id: str) -> Any:
    page = open_ui(browser, app.url, height=1000)
    page.click("#tab_settings-button")
    page.locator(f"#{page_id}-button").wait_for(state="visible", timeout=60000)
    page.click(f"#{page_id}-button")
    return page


def test_sysinfo_page_downloads_the_json(app: RunningApp, browser: Any) -> None:
    page = open_settings_page(browser, app, "settings_tab_sysinfo")
    page.click("#settings_sysinfo_download")
    link = page.locator("#settings_sysinfo_file a").first
    link.wait_for(state="attached", timeout=30000)
    href = link.get_attribute("href")
    assert href and "sysinfo-" in href
    response = app.client.get(href if href.startswith("/") else href.replace(app.url, ""))
    assert response.status_code == 200
    info = json.loads(response.content)
    assert {"Platform", "Python", "Commandline", "Packages"} <= set(info)
    assert info["Data path"] == str(app.data_dir)


def test_actions_page_hashes_all_checkpoints_and_unloads(app: RunningApp, browser: Any) -> None:
    page = open_settings_page(browser, app, "settings_tab_actions")
    page.click("#calculate_all_checkpoint_hash")
    page.wait_for_function("document.querySelector('#settings_actions_result')?.innerText.includes('Calculated')",
                           timeout=60000)
    assert "2 of 2" in page.inner_text("#settings_actions_result")
    models = {m["model_name"]: m for m in app.client.get("/sdapi/v1/sd-models").json()}
    assert all(models[name]["sha256"] for name in ("alpha", "beta"))
    page.click("#sett_unload_sd_model")
    page.wait_for_function("document.querySelector('#settings_actions_result')?.innerText.includes('unloaded')",
                           timeout=30000)
    page.click("#sett_reload_sd_model")
    page.wait_for_function("document.querySelector('#settings_actions_result')?.innerText.includes('loaded:')",
                           timeout=60000)
    assert app.txt2img(seed=3)["images"]


def test_show_all_pages_shows_every_category_at_once(app: RunningApp, browser: Any) -> None:
    page = open_settings_page(browser, app, "settings_tab_sysinfo")
    assert not page.is_visible("#setting_samples_format")  # one category per tab
    page.locator("#settings_show_all_pages input").check()
    page.wait_for_selector("#settings_all_pages", state="visible", timeout=60000)
    for elem_id in ("setting_samples_format", "setting_comma_padding_backtrack", "setting_jpeg_quality"):
        page.locator(f"#{elem_id}").wait_for(state="visible", timeout=30000)
    assert page.locator("#settings_category_saving_images-button").count() == 0
    page.locator("#settings_show_all_pages input").uncheck()
    page.wait_for_selector("#settings_all_pages", state="detached", timeout=60000)


def test_defaults_page_lists_changed_settings_and_reverts_the_chosen(app: RunningApp, browser: Any) -> None:
    changed = app.client.post("/sdapi/v1/options", json={"jpeg_quality": 55, "samples_format": "jpg"})
    assert changed.status_code == 200, changed.text
    page = open_settings_page(browser, app, "settings_tab_defaults")
    page.click("#settings_defaults_view")
    page.wait_for_function("document.querySelector('#settings_defaults_table')?.innerText.includes('jpeg_quality')",
                           timeout=30000)
    assert "samples_format" in page.inner_text("#settings_defaults_table")
    page.locator("#settings_defaults_choose label").filter(has_text="(jpeg_quality)").click()
    page.click("#settings_defaults_revert")
    page.wait_for_function("document.querySelector('#settings_defaults_result')?.innerText.includes('Reverted 1')",
                           timeout=30000)
    options = app.client.get("/sdapi/v1/options").json()
    assert options["jpeg_quality"] == 80 and options["samples_format"] == "jpg"
    assert "jpeg_quality" not in json.loads((app.data_dir / "config.json").read_text())
    assert "jpeg_quality" not in page.inner_text("#settings_defaults_table")


def test_licenses_page_names_the_licenses(app: RunningApp, browser: Any) -> None:
    page = open_settings_page(browser, app, "settings_tab_licenses")
    page.wait_for_selector("#settings_licenses table", timeout=30000)
    text = page.inner_text("#settings_licenses")
    for expected in ("AUTOMATIC1111/stable-diffusion-webui", "GNU Affero General Public License v3.0", "Gradio",
                     "Apache License 2.0", "open_clip", "MIT License", "PyTorch", "BSD 3-Clause License",
                     "spandrel", "safetensors", "transformers"):
        assert expected in text, expected
