"""The top bar's checkpoint dropdown on page load (A1111 quicksettings `sd_model_checkpoint`): it shows the title of
the checkpoint that is loaded and lists every checkpoint found, even though the titles gain their `[hash]` only
after the background hasher and the model load finished after the UI was built."""

from __future__ import annotations

from typing import Any

import pytest

from tests.acceptance.conftest import WebUIFactory, open_ui

pytestmark = pytest.mark.browser


def test_dropdown_shows_loaded_checkpoint_and_lists_all(webui_app: WebUIFactory, browser: Any) -> None:
    app = webui_app(["--api"], checkpoints={"alpha.safetensors": "sd1", "beta.safetensors": "sd1"})

    def hashed() -> str | None:
        name = app.client.get("/sdapi/v1/options").json().get("sd_model_checkpoint") or ""
        models = app.client.get("/sdapi/v1/sd-models").json()
        return next((m["title"] for m in models if name and m["title"].startswith(name) and m["sha256"]), None)

    app.wait_for("the default checkpoint loaded and hashed", lambda: hashed() is not None)
    current = hashed()
    titles = [m["title"] for m in app.client.get("/sdapi/v1/sd-models").json()]
    assert len(titles) == 2 and current in titles and current.endswith("]")
    page = open_ui(browser, app.url)
    box = page.locator("#setting_sd_model_checkpoint input").first
    page.wait_for_function("(t) => document.querySelector('#setting_sd_model_checkpoint input')?.value === t",
                           arg=current, timeout=20000)
    box.click()
    options = page.locator("#setting_sd_model_checkpoint li[role=option]")
    options.first.wait_for(timeout=10000)
    listed = [str(options.nth(i).get_attribute("aria-label")) for i in range(options.count())]
    assert sorted(listed) == sorted(titles)
