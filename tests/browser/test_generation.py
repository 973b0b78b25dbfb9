"""Browser tests that generate with tiny SD1 checkpoints: txt2img result and infotext, progress bar + live preview
and Interrupt, PNG Info → img2img, checkpoint switch from the top bar, a setting applied in the Settings tab that
survives a restart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.browser.conftest import fill_text, open_ui, start_ui_server

pytestmark = pytest.mark.browser

INFOTEXT = ("a red fox in snow\nNegative prompt: blurry, lowres\nSteps: 7, Sampler: Euler a, Schedule type: Karras, "
            "CFG scale: 4.5, Seed: 4242, Size: 72x80, Model: tiny")


def _data_dir(tmp: Path, tiny_checkpoint: Any) -> Path:
    ckpt_dir = tmp / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    shutil.copy(tiny_checkpoint("sd1"), ckpt_dir / "tinyA.safetensors")
    shutil.copy(tiny_checkpoint("sd1", seed=1), ckpt_dir / "tinyB.safetensors")
    (tmp / "config.json").write_text(json.dumps({"show_progress_every_n_steps": 1,
                                                 "live_preview_refresh_period": 100}))
    return tmp


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Any):  # type: ignore[no-untyped-def]
    srv = start_ui_server(_data_dir(tmp_path_factory.mktemp("gen-data"), tiny_checkpoint))
    yield srv
    srv.stop()


def set_number(page: Any, elem_id: str, value: Any) -> None:
    """Type into the number box of a slider/number component and commit it (blur)."""
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(str(value))
    box.press("Tab")


def generate_small(page: Any, steps: int, seed: int = 1234) -> None:
    fill_text(page, "txt2img_prompt", "a cat")
    set_number(page, "txt2img_width", 64)
    set_number(page, "txt2img_height", 64)
    set_number(page, "txt2img_steps", steps)
    set_number(page, "txt2img_seed", seed)
    page.click("#txt2img_generate")


def wait_done(page: Any, timeout: float = 60000) -> None:
    page.wait_for_selector("#txt2img_progress [data-job-state='done']", state="attached", timeout=timeout)


def test_txt2img_shows_image_and_infotext(server, browser) -> None:  # type: ignore[no-untyped-def]
    page = open_ui(browser, server.url)
    generate_small(page, steps=2)
    page.wait_for_selector("#txt2img_gallery img", timeout=90000)
    page.wait_for_function("document.querySelector('#html_info_txt2img').innerText.includes('Steps: 2')",
                           timeout=20000)
    info = page.inner_text("#html_info_txt2img")
    assert "Seed: 1234" in info and "Size: 64x64" in info
    assert page.is_visible("#txt2img_open_folder")  # local server: 📂 shown
    page.click("#txt2img_upscale")  # ✨ hires pass on the selected image, same seed
    page.wait_for_function("document.querySelector('#html_info_txt2img').innerText.includes('Hires upscale')",
                           timeout=90000)
    assert "Seed: 1234" in page.inner_text("#html_info_txt2img")


def test_progress_preview_interrupt_then_generate_again(server, browser) -> None:  # type: ignore[no-untyped-def]
    page = open_ui(browser, server.url)
    assert not page.is_visible("#txt2img_interrupt") and not page.is_visible("#txt2img_skip")  # idle: hidden (A1111)
    generate_small(page, steps=150)
    page.wait_for_function("(document.querySelector('#txt2img_progress .progress') || {}).innerText?.includes('%')",
                           timeout=60000)
    page.wait_for_selector("#txt2img_preview img", timeout=60000)
    assert page.is_visible("#txt2img_skip")
    page.click("#txt2img_interrupt")
    wait_done(page, timeout=30000)
    page.wait_for_selector("#txt2img_interrupt", state="hidden", timeout=10000)
    assert page.locator("#txt2img_progress .progressDiv").count() == 0
    assert "Interrupted" in page.inner_text("#html_log_txt2img") or page.is_visible("#txt2img_gallery img")
    generate_small(page, steps=2, seed=77)
    page.wait_for_function("document.querySelector('#html_info_txt2img').innerText.includes('Seed: 77')",
                           timeout=60000)


def test_pnginfo_send_to_img2img_fills_fields(server, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    png = tmp_path / "fox.png"
    meta = PngInfo()
    meta.add_text("parameters", INFOTEXT)
    Image.new("RGB", (72, 80), (200, 40, 10)).save(png, pnginfo=meta)
    page = open_ui(browser, server.url)
    page.click("#tab_pnginfo-button")
    page.set_input_files("#pnginfo_image input[type=file]", str(png))
    page.wait_for_function("document.querySelector('#pnginfo_html_info').innerText.includes('Steps: 7')",
                           timeout=20000)
    page.click("#pnginfo_send_to_img2img")
    page.wait_for_function("document.querySelector('#img2img_prompt textarea')?.value === 'a red fox in snow'",
                           timeout=20000)
    assert page.input_value("#img2img_neg_prompt textarea") == "blurry, lowres"
    assert page.input_value("#img2img_steps input[type=number]") == "7"
    assert page.input_value("#img2img_cfg_scale input[type=number]") == "4.5"
    assert page.input_value("#img2img_seed input") == "4242"
    assert page.input_value("#img2img_width input[type=number]") == "72"
    assert page.input_value("#img2img_height input[type=number]") == "80"
    assert page.input_value("#img2img_sampling input") == "Euler a"
    assert page.is_visible("#img2img_image img")
    page.click("#img2img_tab_resize_by-button")
    set_number(page, "img2img_scale", 2)
    page.wait_for_function("document.querySelector('#img2img_scale_resolution_preview')?.innerText"
                           ".includes('from 72x80 to 144x160')", timeout=20000)


def right_click_generate_or_interrupt(page: Any) -> None:
    """Right-click the button a user sees: Interrupt while a job of the forever loop runs (it covers Generate),
    Generate between two jobs; both open the Generate forever menu."""
    for _ in range(30):
        for selector in ("#txt2img_interrupt", "#txt2img_generate"):
            try:
                page.click(selector, button="right", timeout=1000)
                return
            except PlaywrightTimeoutError:
                continue
    raise AssertionError("neither Generate nor Interrupt could be right-clicked")


def test_generate_forever_repeats_until_cancelled(server, browser) -> None:  # type: ignore[no-untyped-def]
    page = open_ui(browser, server.url)
    generate_small(page, steps=1, seed=-1)
    wait_done(page)
    page.wait_for_function("document.body.hasAttribute('data-last-job-end')", timeout=20000)
    page.click("#txt2img_generate", button="right")
    page.click("#context-menu a:has-text('Generate forever')")
    ends: set[str] = set()
    for _ in range(600):
        ends.add(page.evaluate("document.body.getAttribute('data-last-job-end')"))
        if len(ends) >= 3:
            break
        page.wait_for_timeout(100)
    assert len(ends) >= 3, "Generate forever did not start a new job after the previous one ended"
    right_click_generate_or_interrupt(page)
    page.click("#context-menu a:has-text('Cancel generate forever')")
    assert page.evaluate("window.sdForever.txt2img") is False
    page.wait_for_function("document.querySelector('#txt2img_progress [data-job-state]')"
                           ".getAttribute('data-job-state') !== 'running'", timeout=60000)
    page.wait_for_timeout(500)
    page.close()


def test_switch_checkpoint_from_top_bar(server, browser) -> None:  # type: ignore[no-untyped-def]
    page = open_ui(browser, server.url)
    page.click("#setting_sd_model_checkpoint input")
    page.get_by_role("option", name="tinyB").first.click()
    config = Path(server.data_dir) / "config.json"
    page.wait_for_function("true", timeout=100)
    for _ in range(100):
        if "tinyB" in str(json.loads(config.read_text()).get("sd_model_checkpoint")):
            break
        page.wait_for_timeout(100)
    generate_small(page, steps=1, seed=5)
    page.wait_for_function("document.querySelector('#html_info_txt2img').innerText.includes('Model: tinyB')",
                           timeout=60000)


def test_settings_tab_apply_survives_restart(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    srv = start_ui_server(tmp_path)
    try:
        page = open_ui(browser, srv.url)
        page.click("#tab_settings-button")
        page.wait_for_selector("#setting_jpeg_quality", state="attached", timeout=30000)
        fill_text(page, "settings_search", "jpeg")
        box = page.locator("#setting_jpeg_quality input[type=number]")
        box.wait_for(timeout=30000)
        box.fill("55")
        box.press("Tab")
        page.click("#settings_submit")
        page.wait_for_function("document.querySelector('#settings_result').innerText.includes('jpeg_quality')",
                               timeout=20000)
    finally:
        srv.stop()
    assert json.loads((tmp_path / "config.json").read_text())["jpeg_quality"] == 55
    srv = start_ui_server(tmp_path)
    try:
        page = open_ui(browser, srv.url)
        page.click("#tab_settings-button")
        page.wait_for_selector("#setting_jpeg_quality", state="attached", timeout=30000)
        assert page.input_value("#setting_jpeg_quality input[type=number]") == "55"
    finally:
        srv.stop()


def test_xyz_plot_from_script_dropdown(server, browser) -> None:  # type: ignore[no-untyped-def]
    page = open_ui(browser, server.url)
    assert not page.is_visible("#script_txt2img_x_y_z_plot_x_values")
    page.click("#txt2img_script_dropdown input")
    page.get_by_role("option", name="X/Y/Z plot").click()
    page.wait_for_selector("#script_txt2img_x_y_z_plot_x_values textarea", timeout=20000)
    page.click("#script_txt2img_x_y_z_plot_x_type input")
    page.get_by_role("option", name="Steps", exact=True).click()
    fill_text(page, "script_txt2img_x_y_z_plot_x_values", "1,2")
    generate_small(page, steps=1, seed=3)
    wait_done(page, timeout=90000)
    assert page.locator("#txt2img_gallery img").count(), page.inner_text("#html_log_txt2img")
    width = page.eval_on_selector("#txt2img_gallery img", "e => e.naturalWidth")
    assert width >= 128, f"expected a 2-column X/Y/Z grid, got an image {width} px wide"
