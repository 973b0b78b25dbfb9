"""X/Y/Z plot in the browser: the grid's infotext names the script and its axes (A1111 "Script: X/Y/Z plot",
"X Type", "X Values"), and pasting it back with ↙️ selects the script and fills its axis controls."""

from __future__ import annotations

from typing import Any

import pytest

from tests.acceptance.conftest import RunningApp, WebUIFactory, open_ui
from tests.acceptance.test_hires_accordion import set_number
from tests.browser.conftest import fill_text

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    running = webui_app(["--api"])
    running.wait_for_model()
    return running


def choose(page: Any, elem_id: str, option: str) -> None:
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=option, exact=True).click()


def test_grid_infotext_pastes_back_into_the_plot(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url, height=1200)
    fill_text(page, "txt2img_prompt", "a cat")
    for elem_id, value in (("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_steps", 1),
                           ("txt2img_seed", 91)):
        set_number(page, elem_id, value)
    choose(page, "txt2img_script_dropdown", "X/Y/Z plot")
    page.wait_for_selector("#script_txt2img_x_y_z_plot_x_values textarea", timeout=20000)
    choose(page, "script_txt2img_x_y_z_plot_x_type", "Steps")
    fill_text(page, "script_txt2img_x_y_z_plot_x_values", "1,2")
    page.click("#txt2img_generate")
    page.wait_for_function("document.querySelector('#html_info_txt2img')?.innerText.includes('X/Y/Z plot')",
                           timeout=180000)
    info = page.inner_text("#html_info_txt2img")
    assert 'Script: X/Y/Z plot, X Type: Steps, X Values: "1,2"' in info

    page = open_ui(browser, app.url, height=1200)  # a fresh page: no script selected
    assert not page.is_visible("#script_txt2img_x_y_z_plot_x_values")
    fill_text(page, "txt2img_prompt", info.strip().replace("\n\n", "\n"))
    page.click("#txt2img_paste")
    page.wait_for_selector("#script_txt2img_x_y_z_plot_x_values textarea", state="visible", timeout=20000)
    page.wait_for_function(
        "document.querySelector('#script_txt2img_x_y_z_plot_x_values textarea')?.value === '1,2'", timeout=20000)
    assert page.input_value("#script_txt2img_x_y_z_plot_x_type input") == "Steps"
    assert page.input_value("#txt2img_script_dropdown input") == "X/Y/Z plot"
