"""Settings that act when txt2img runs in the browser (and `img2img_autosize` when an image is loaded) (A1111 `modules/txt2img.py`): `do_not_show_images`,
`enable_console_prompts`, `samples_log_stdout`, `memmon_poll_rate` (0: no memory line),
`hires_button_gallery_insert` (✨), and a setting shown in the
txt2img tab through `extra_options_txt2img` overriding the setting for that generation only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import RunningApp, WebUIFactory, open_ui, set_number
from tests.browser.conftest import fill_text

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    def prepare(data: Path) -> None:
        (data / "config.json").write_text(json.dumps({"extra_options_txt2img": ["CLIP_stop_at_last_layers"]}))

    running = webui_app(["--api"], prepare=prepare)
    running.wait_for_model()
    return running


def set_options(app: RunningApp, **values: Any) -> None:
    assert app.client.post("/sdapi/v1/options", json=values).status_code == 200


def generate(page: Any, seed: int, prompt: str = "a cat") -> str:
    fill_text(page, "txt2img_prompt", prompt)
    for elem_id, value in (("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_steps", 2),
                           ("txt2img_seed", seed)):
        set_number(page, elem_id, value)
    page.click("#txt2img_generate")
    page.wait_for_function("(s) => document.querySelector('#html_info_txt2img')?.innerText.includes('Seed: ' + s)",
                           arg=seed, timeout=180000)
    return str(page.inner_text("#html_info_txt2img"))


def gallery_count(page: Any) -> int:
    return int(page.evaluate("document.querySelectorAll('#txt2img_gallery img').length"))


def test_do_not_show_images_and_console_prints(app: RunningApp, browser: Any,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    set_options(app, do_not_show_images=True, enable_console_prompts=True, samples_log_stdout=True,
                memmon_poll_rate=0)
    page = open_ui(browser, app.url)
    generate(page, 41, "a quiet fox")
    page.wait_for_timeout(500)
    assert gallery_count(page) == 0  # the infotext is shown, the image is not
    log = page.inner_text("#html_log_txt2img")
    assert "Time taken" in log and "GB" not in log  # no memory monitor: no memory line (A1111)
    out = capsys.readouterr().out
    assert "\ntxt2img: a quiet fox" in out
    assert '"seed": 41' in out and '"infotexts"' in out

    set_options(app, do_not_show_images=False, enable_console_prompts=False, samples_log_stdout=False,
                memmon_poll_rate=8)
    generate(page, 42, "a loud fox")
    page.wait_for_function("document.querySelectorAll('#txt2img_gallery img').length === 1", timeout=20000)
    assert "GB" in page.inner_text("#html_log_txt2img")
    out = capsys.readouterr().out
    assert "a loud fox" not in out and '"seed": 42' not in out


@pytest.mark.parametrize("insert", [False, True], ids=["replace", "insert"])
def test_hires_button_replaces_or_inserts(app: RunningApp, browser: Any, insert: bool) -> None:
    set_options(app, hires_button_gallery_insert=insert)
    page = open_ui(browser, app.url)
    generate(page, 43)
    page.wait_for_function("document.querySelectorAll('#txt2img_gallery img').length === 1", timeout=20000)
    page.click("#txt2img_upscale")
    page.wait_for_function("document.querySelector('#html_info_txt2img')?.innerText.includes('Hires upscale')",
                           timeout=180000)
    expected = 2 if insert else 1
    page.wait_for_function(f"document.querySelectorAll('#txt2img_gallery img').length === {expected}",
                           timeout=20000)
    page.wait_for_timeout(500)
    assert gallery_count(page) == expected


def test_setting_shown_in_txt2img_overrides_it_for_the_generation(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url)
    page.wait_for_selector("#txt2img_setting_CLIP_stop_at_last_layers", timeout=20000)
    set_number(page, "txt2img_setting_CLIP_stop_at_last_layers", 2)
    assert "Clip skip: 2" in generate(page, 44)
    assert app.client.get("/sdapi/v1/options").json()["CLIP_stop_at_last_layers"] == 1  # setting unchanged
    set_number(page, "txt2img_setting_CLIP_stop_at_last_layers", 1)
    assert "Clip skip" not in generate(page, 45)


@pytest.mark.parametrize("enabled", [True, False], ids=["autosize", "fixed-size"])
def test_img2img_autosize(app: RunningApp, browser: Any, tmp_path: Path, enabled: bool) -> None:
    from PIL import Image

    set_options(app, img2img_autosize=enabled)
    Image.new("RGB", (200, 136), (10, 120, 200)).save(tmp_path / "in.png")
    page = open_ui(browser, app.url)
    page.click("#tabs button:has-text('img2img')")
    page.wait_for_selector("#img2img_image input[type=file]", state="attached", timeout=20000)
    page.set_input_files("#img2img_image input[type=file]", str(tmp_path / "in.png"))
    page.wait_for_selector("#img2img_image img", timeout=20000)
    expected = ("200", "136") if enabled else ("512", "512")
    page.wait_for_function("(e) => document.querySelector('#img2img_width input[type=number]')?.value === e[0] && "
                           "document.querySelector('#img2img_height input[type=number]')?.value === e[1]",
                           arg=list(expected), timeout=20000)
    page.wait_for_timeout(1000)
    assert (page.input_value("#img2img_width input[type=number]"),
            page.input_value("#img2img_height input[type=number]")) == expected
    set_options(app, img2img_autosize=False)


@pytest.mark.parametrize("enabled", [True, False], ids=["scale-follows", "scale-stays"])
def test_set_scale_by_when_changing_upscaler(app: RunningApp, browser: Any, enabled: bool) -> None:
    set_options(app, set_scale_by_when_changing_upscaler=enabled)
    page = open_ui(browser, app.url)
    page.click("#tab_extras-button")
    scale = page.locator("#extras_upscaling_resize input[type=number]").first
    scale.wait_for(timeout=20000)
    scale.fill("2")
    scale.press("Tab")
    page.click("#extras_upscaler_1 input")
    page.locator("ul[role=listbox] li", has_text="DAT x3").first.click()
    expected = "3" if enabled else "2"
    page.wait_for_timeout(1500)
    assert scale.input_value() == expected
    set_options(app, set_scale_by_when_changing_upscaler=False)


def test_open_folder_button_choice(app: RunningApp, browser: Any, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import time

    record = tmp_path / "opened.txt"
    fake = tmp_path / "bin" / "xdg-open"  # the desktop's folder opener, replaced by one that writes down its argument
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$1" >> {record}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ.get('PATH', '')}")

    def opened_after_click(page: Any) -> Path:
        before = record.read_text().splitlines() if record.exists() else []
        page.click("#txt2img_open_folder")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            lines = record.read_text().splitlines() if record.exists() else []
            if len(lines) > len(before):
                return Path(lines[-1])
            time.sleep(0.2)
        raise AssertionError("📂 opened nothing")

    set_options(app, open_dir_button_choice="Subdirectory", save_to_dirs=True)
    page = open_ui(browser, app.url)
    generate(page, 46)
    root = (app.data_dir / "outputs" / "txt2img-images").resolve()
    sub = opened_after_click(page).resolve()
    assert sub.parent == root and any(p.suffix == ".png" for p in sub.iterdir())  # the dated subfolder
    set_options(app, open_dir_button_choice="Output Root")
    assert opened_after_click(page).resolve() == root
    set_options(app, open_dir_button_choice="Subdirectory")
