"""Settings tab special pages (A1111 `ui_settings`): Sysinfo downloads the system-information JSON (command line
masked), Actions unloads / reloads the checkpoint and hashes every checkpoint."""

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
