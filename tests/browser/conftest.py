"""Browser fixtures: a real server (modules.server via the integration live-server helper) with the UI from
`modules.ui.build_ui`, and a Playwright page on Debian's Chromium (skipped only when /usr/bin/chromium is missing)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def start_ui_server(data_dir: Path, args: list[str] | None = None) -> Any:
    """Start the full app with the UI on a free loopback port; the UI is built on the server's `ctx`."""
    from modules.ui import build_ui
    from tests.integration.conftest import start_live_server

    return start_live_server(data_dir, args or [], ui_factory=build_ui)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def open_ui(browser: Any, url: str, width: int = 1280, height: int = 800) -> Any:
    """A page on the UI, waiting until the load-time assets were applied."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url + "/")
    page.wait_for_selector("body[data-sd-ready='1']", timeout=60000)
    return page
