"""💾 Save and 🗃️ Zip under the txt2img gallery (A1111 `save_files`): the selected image (or all, with
`save_selected_only` off) goes to `outdir_save` with a `log.csv` row whose cells cannot run as spreadsheet formulas;
Zip writes an archive of every image named by `grid_zip_filename_pattern`; the files are offered as download links."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import RunningApp, WebUIFactory, open_ui, set_number
from tests.browser.conftest import fill_text

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    def config(data: Path) -> None:
        (data / "config.json").write_text(json.dumps({"outdir_save": "saved", "samples_save": False,
                                                      "grid_zip_filename_pattern": "pack-[seed]"}))

    running = webui_app(["--api"], prepare=config)
    running.wait_for_model()
    return running



def generate(page: Any, prompt: str, seed: int, batch_size: int) -> None:
    fill_text(page, "txt2img_prompt", prompt)
    for elem_id, value in (("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_steps", 2),
                           ("txt2img_seed", seed), ("txt2img_batch_size", batch_size)):
        set_number(page, elem_id, value)
    page.click("#txt2img_generate")
    page.wait_for_function("(s) => document.querySelector('#html_info_txt2img')?.innerText.includes('Seed: ' + s)",
                           arg=seed, timeout=120000)


def pngs(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.png"))


def test_save_selected_image_then_zip_all(app: RunningApp, browser: Any) -> None:
    saved = app.data_dir / "saved"
    page = open_ui(browser, app.url)
    generate(page, "=HYPERLINK(1) a cat", 41, batch_size=2)
    assert page.locator("#save_txt2img").get_attribute("title")
    page.click("#save_txt2img")
    page.wait_for_function("document.querySelector('#html_log_txt2img')?.innerText.includes('Saved: ')",
                           timeout=30000)
    assert len(pngs(saved)) == 1  # save_selected_only (on by default): only the selected image
    assert page.locator("#download_files_txt2img").is_visible()
    rows = list(csv.reader((saved / "log.csv").open(encoding="utf-8")))
    assert rows[0] == ["prompt", "seed", "width", "height", "sampler", "cfgs", "steps", "filename",
                       "negative_prompt", "sd_model_name", "sd_model_hash"]
    assert rows[1][0] == "'=HYPERLINK(1) a cat"  # neutralised: a spreadsheet shows text, never runs it
    assert rows[1][1] == "41" and rows[1][2:4] == ["64", "64"] and rows[1][7] == pngs(saved)[0].name
    with pngs(saved)[0].open("rb") as handle:
        assert b"Seed: 41" in handle.read()

    page.click("#save_zip_txt2img")
    page.wait_for_function("document.querySelectorAll('#download_files_txt2img a').length >= 3", timeout=30000)
    archive = saved / "pack-41.zip"
    assert archive.is_file()
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
    assert len([n for n in names if n.endswith(".png")]) >= 2
    links = page.evaluate("Array.from(document.querySelectorAll('#download_files_txt2img a'))"
                          ".map(a => a.getAttribute('href') + ' ' + a.innerText)")
    assert any("pack-41.zip" in text for text in links), links
    assert len(list(csv.reader((saved / "log.csv").open(encoding="utf-8")))) == 3


def test_save_all_without_selected_only_and_no_log_row(app: RunningApp, browser: Any) -> None:
    assert app.client.post("/sdapi/v1/options", json={"save_selected_only": False, "save_write_log_csv": False,
                                                      "outdir_save": "all", "return_grid": False}).status_code == 200
    page = open_ui(browser, app.url)
    generate(page, "a dog", 51, batch_size=2)
    page.click("#save_txt2img")
    page.wait_for_function("document.querySelector('#html_log_txt2img')?.innerText.includes('Saved: ')",
                           timeout=30000)
    folder = app.data_dir / "all"
    assert len(pngs(folder)) == 2
    assert (folder / "log.csv").read_text(encoding="utf-8").strip().count("\n") == 0  # header only
