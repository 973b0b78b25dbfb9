"""Browser tests of the Extensions tab: install from URL is refused with the manager's notice on a --listen
server, the extension index loads from a URL and marks nothing installed, the installed list shows extensions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser.conftest import fill_text, open_ui, start_ui_server

pytestmark = pytest.mark.browser


def test_install_refused_when_listening_and_index_loads(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "extensions" / "my-ext").mkdir(parents=True)
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"tags": {}, "extensions": [
        {"name": "Cool Extension", "url": "https://example.invalid/cool.git", "description": "does cool things",
         "tags": ["script"]}]}))
    srv = start_ui_server(tmp_path, ["--listen"])
    try:
        page = open_ui(browser, srv.url)
        assert page.locator("#txt2img_open_folder").count() == 0 or not page.is_visible("#txt2img_open_folder")
        page.click("#tab_extensions-button")
        page.wait_for_selector("#extensions_table", timeout=20000)
        assert "my-ext" in page.inner_text("#extensions_table")
        page.wait_for_selector("#extensions_disabled_notice", timeout=5000)
        page.click("#extensions_install_tab-button")
        fill_text(page, "extensions_install_url", "https://example.invalid/x.git")
        page.click("#extensions_install_button")
        page.wait_for_function("document.querySelector('#extensions_install_result')?.innerText"
                               ".includes('--enable-insecure-extension-access')", timeout=20000)
        assert not (tmp_path / "extensions" / "x").exists()
        page.click("#extensions_available_tab-button")
        fill_text(page, "extensions_index_url", index.as_uri())
        page.click("#extensions_index_load")
        page.wait_for_function("document.querySelector('#extensions_available')?.innerText"
                               ".includes('does cool things')", timeout=20000)
    finally:
        srv.stop()
