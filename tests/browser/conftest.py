"""Browser fixtures: the real app built through its composition root (`webui.create_app`, with the API on so tests
can read settings back over HTTP) and a Playwright page on Debian's Chromium (skipped only when /usr/bin/chromium
is missing)."""

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
    """The app as `./webui.sh` builds it (`webui.create_app` through the acceptance harness) with `args` and
    `data_dir`, served on a free loopback port; `.url`, `.client`, `.stop()`."""
    from tests.acceptance.conftest import serve

    return serve([*(args or []), "--api", "--no-download-sd-model"], data_dir)


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


def fill_text(page: Any, elem_id: str, value: str, attempts: int = 5) -> None:
    """Type `value` into the text box of Gradio component `elem_id` and make sure it stays there: a box inside a
    tab that was just opened can be mounted after the first fill and reset to its initial value on a slow machine."""
    box = page.locator(f"#{elem_id} textarea, #{elem_id} input").first
    for _ in range(attempts):
        box.fill(value)
        box.press("Tab")
        page.wait_for_timeout(200)
        if box.input_value() == value:
            return
    raise AssertionError(f"#{elem_id} does not keep the typed value {value!r}: {box.input_value()!r}")
