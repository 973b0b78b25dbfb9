"""Hires. fix in the browser: the accordion is the on/off switch (A1111 `InputAccordion`: opening enables it,
closing disables it, a pasted infotext with hires fix opens it) and the "from W×H to W×H" line under the controls
(A1111 `calc_resolution_hires`) follows width, height, Upscale by and the resize sliders."""

from __future__ import annotations

from typing import Any

import pytest

from tests.acceptance.conftest import RunningApp, WebUIFactory, open_ui, set_number
from tests.browser.conftest import fill_text

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    running = webui_app(["--api"])
    running.wait_for_model()
    return running



def enabled(page: Any) -> bool:
    return bool(page.evaluate("!!document.querySelector('#txt2img_enable_hr input[type=checkbox]')?.checked"))


def final_resolution(page: Any, expected: str) -> None:
    """Waits until the line reads `expected` (an empty `expected` waits for the line to be empty)."""
    page.wait_for_function("(t) => { const s = (document.querySelector('#txtimg_hr_finalres')?.innerText || '')"
                           ".replace(/\\s+/g, ' ').trim(); return t === '' ? s === '' : s.includes(t); }",
                           arg=expected, timeout=20000)


def generate(page: Any, seed: int) -> str:
    set_number(page, "txt2img_seed", seed)
    page.click("#txt2img_generate")
    page.wait_for_function("(s) => document.querySelector('#html_info_txt2img')?.innerText.includes('Seed: ' + s)",
                           arg=seed, timeout=180000)
    return str(page.inner_text("#html_info_txt2img"))


def test_accordion_switches_hires_fix_and_shows_the_target_size(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url, height=1000)
    fill_text(page, "txt2img_prompt", "a cat")
    for elem_id, value in (("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_steps", 2)):
        set_number(page, elem_id, value)
    assert not enabled(page)
    page.click("#txt2img_hr .label-wrap")
    page.wait_for_function("document.querySelector('#txt2img_enable_hr input[type=checkbox]')?.checked",
                           timeout=20000)
    final_resolution(page, "from 64x64 to 128x128")
    set_number(page, "txt2img_hr_resize_x", 256)
    final_resolution(page, "from 64x64 to 256x256")
    set_number(page, "txt2img_hr_resize_x", 0)
    set_number(page, "txt2img_hr_scale", 1.5)
    final_resolution(page, "from 64x64 to 96x96")
    info = generate(page, 81)
    assert "Hires upscale: 1.5" in info and "Size: 64x64" in info

    page.click("#txt2img_hr .label-wrap")  # closing the accordion turns hires fix off
    page.wait_for_function("!document.querySelector('#txt2img_enable_hr input[type=checkbox]')?.checked",
                           timeout=20000)
    final_resolution(page, "")
    assert page.inner_text("#txtimg_hr_finalres").strip() == ""
    assert "Hires upscale" not in generate(page, 82)


def test_pasted_hires_infotext_opens_the_accordion(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url, height=1000)
    fill_text(page, "txt2img_prompt", "a fox\nSteps: 2, Sampler: Euler, Seed: 83, Size: 64x64, "
                                          "Denoising strength: 0.5, Hires upscale: 2, Hires upscaler: Latent")
    page.click("#txt2img_paste")
    page.wait_for_function("document.querySelector('#txt2img_enable_hr input[type=checkbox]')?.checked",
                           timeout=20000)
    page.wait_for_selector("#txt2img_hr_scale", state="visible", timeout=20000)
    final_resolution(page, "from 64x64 to 128x128")
