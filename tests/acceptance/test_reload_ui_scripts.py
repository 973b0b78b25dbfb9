"""`enable_reloading_ui_scripts` as a user meets it: Settings → "Reload UI" only reloads the page while the setting
is off; with it on, the server restarts through the launcher (webui.sh / launch.py start it again while the
`tmp/restart` marker exists), so the UI modules and scripts are imported again (A1111 re-imports `modules.ui*` on
Reload UI with this setting). The app is built only through `create_app`, with the launcher's SD_WEBUI_RESTART."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import WebUIFactory, open_ui

pytestmark = pytest.mark.browser

MARKER = Path(__file__).resolve().parents[2] / "tmp" / "restart"
"""The launcher's restart marker (`Paths.restart_file`, under the install folder)."""


def _marker_written_since(started: float) -> bool:
    return MARKER.exists() and MARKER.stat().st_mtime >= started - 1


def test_reload_ui_restarts_the_server_only_with_enable_reloading_ui_scripts(webui_app: WebUIFactory,
                                                                               browser: Any) -> None:
    app = webui_app(["--api", "--no-download-sd-model"], checkpoints={}, env={"SD_WEBUI_RESTART": "1"})
    page = open_ui(browser, app.url)
    page.click("#tab_settings-button")
    page.wait_for_selector("#settings_restart_gradio", timeout=20000)
    started = time.time()
    with page.expect_navigation(timeout=20000):  # off (A1111 default): the page reloads, the server stays
        page.click("#settings_restart_gradio")
    time.sleep(1.0)
    assert app.client.get("/sdapi/v1/options").status_code == 200
    assert not _marker_written_since(started)

    answer = app.client.post("/sdapi/v1/options", json={"enable_reloading_ui_scripts": True})
    assert answer.status_code == 200, answer.text
    page.click("#tab_settings-button")
    page.wait_for_selector("#settings_restart_gradio", timeout=20000)
    started = time.time()
    page.click("#settings_restart_gradio")
    try:
        page.wait_for_selector("#settings_result [data-reload='restart']", timeout=20000)
        assert "server restarts" in page.inner_text("#settings_result")
        deadline = time.monotonic() + 20
        while not _marker_written_since(started) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _marker_written_since(started), "Reload UI did not ask the launcher for a restart"
        deadline = time.monotonic() + 20
        stopped = False
        while not stopped and time.monotonic() < deadline:
            try:
                app.client.get("/sdapi/v1/options", timeout=2)
                time.sleep(0.3)
            except httpx.HTTPError:
                stopped = True
        assert stopped, "the server did not stop for the restart"
    finally:
        if _marker_written_since(started):
            MARKER.unlink(missing_ok=True)
