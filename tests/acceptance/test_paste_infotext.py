"""Pasting generation parameters in the browser (A1111 `infotext_utils`): ↙ on the prompt box and PNG Info →
"Send to txt2img/img2img". The next job must run: settings from the text become overrides only when they differ
from the current ones and with the setting's own type; the checkpoint is left alone unless the setting
`disable_weights_auto_swap` is off; index radios (inpaint options) keep a valid choice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png, open_ui
from tests.browser.conftest import fill_text
from tests.conftest import TinyCheckpointFactory

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory, tiny_checkpoint: TinyCheckpointFactory) -> RunningApp:
    def other_weights(data: Path) -> None:  # beta: other random weights, so another hash
        shutil.copyfile(tiny_checkpoint("sd1", seed=1), data / "models" / "Stable-diffusion" / "beta.safetensors")

    running = webui_app(["--api"], checkpoints={"alpha.safetensors": "sd1"}, prepare=other_weights)

    def loaded() -> bool:
        return "alpha" in str(running.client.get("/sdapi/v1/options").json().get("sd_model_checkpoint"))

    running.wait_for("alpha loaded", loaded)
    return running


def loaded_checkpoint(app: RunningApp) -> str:
    """The loaded checkpoint's file name (the setting gains the ` [hash]` once the title is known)."""
    return str(app.client.get("/sdapi/v1/options").json()["sd_model_checkpoint"]).split(" [")[0]


def override_entries(page: Any, tab: str) -> list[str]:
    box = page.locator(f"#{tab}_override_settings")
    if not box.is_visible():
        return []
    return [t.strip() for t in box.locator(".token").all_inner_texts()]


def wait_for_seed(page: Any, tab: str, seed: int) -> str:
    page.wait_for_function(
        "([t, s]) => document.querySelector('#html_info_' + t)?.innerText.includes('Seed: ' + s)"
        " || document.querySelector('#html_log_' + t + ' .error') || document.querySelector('.toast-body.error')",
        arg=[tab, seed], timeout=120000)
    info = page.inner_text(f"#html_info_{tab}")
    assert f"Seed: {seed}" in info, page.inner_text(f"#html_log_{tab}") or page.inner_text("body")[-600:]
    assert page.locator(f"#{tab}_gallery img").count() >= 1
    return info


def test_paste_with_unknown_model_hash_keeps_the_checkpoint(app: RunningApp, browser: Any) -> None:
    before = loaded_checkpoint(app)
    page = open_ui(browser, app.url)
    fill_text(page, "txt2img_prompt", "a fox\nSteps: 2, Sampler: Euler, CFG scale: 5, Seed: 31, Size: 64x64, "
                                          "Model hash: deadbeef00, Model: other")
    page.click("#txt2img_paste")
    page.wait_for_function("document.querySelector('#txt2img_prompt textarea')?.value === 'a fox'", timeout=20000)
    assert not any("deadbeef00" in e for e in override_entries(page, "txt2img"))
    page.click("#txt2img_generate")
    info = wait_for_seed(page, "txt2img", 31)
    assert "Model: alpha" in info and "deadbeef00" not in info
    assert loaded_checkpoint(app) == before


def test_paste_switches_checkpoint_only_with_auto_swap_enabled(app: RunningApp, browser: Any) -> None:
    app.txt2img(override_settings={"sd_model_checkpoint": "beta"})  # beta is hashed when first used
    beta_hash = next(m for m in app.client.get("/sdapi/v1/sd-models").json() if m["model_name"] == "beta")["hash"]
    assert beta_hash
    text = f"a fox\nSteps: 2, Sampler: Euler, Seed: 32, Size: 64x64, Model hash: {beta_hash}, Model: beta"
    before = loaded_checkpoint(app)
    page = open_ui(browser, app.url)
    fill_text(page, "txt2img_prompt", text)
    page.click("#txt2img_paste")
    page.wait_for_function("document.querySelector('#txt2img_prompt textarea')?.value === 'a fox'", timeout=20000)
    assert override_entries(page, "txt2img") == []  # default: disable_weights_auto_swap on
    assert app.client.post("/sdapi/v1/options", json={"disable_weights_auto_swap": False}).status_code == 200
    try:
        fill_text(page, "txt2img_prompt", text)
        page.click("#txt2img_paste")
        page.wait_for_function("document.querySelector('#txt2img_override_settings .token')", timeout=20000)
        assert any(beta_hash in e for e in override_entries(page, "txt2img"))
        page.click("#txt2img_generate")
        info = wait_for_seed(page, "txt2img", 32)
    finally:
        app.client.post("/sdapi/v1/options", json={"disable_weights_auto_swap": True})
    assert f"Model hash: {beta_hash}, Model: beta" in info
    assert loaded_checkpoint(app) == before  # override_settings_restore_afterwards


def _real_png(app: RunningApp, folder: Path) -> Path:
    """An image with the app's own infotext (Clip skip 2 makes a setting the paste must override)."""
    data = app.txt2img(seed=41, steps=2, override_settings={"CLIP_stop_at_last_layers": 2}, save_images=False)
    infotext = json.loads(data["info"])["infotexts"][0]
    assert "Clip skip: 2" in infotext
    path = folder / "real.png"
    decode_png(data["images"][0]).save(path, pnginfo=_pnginfo(infotext))
    return path


def _pnginfo(text: str) -> Any:
    from PIL.PngImagePlugin import PngInfo

    meta = PngInfo()
    meta.add_text("parameters", text)
    return meta


def _send_from_pnginfo(page: Any, png: Path, button: str) -> None:
    page.click("#tab_pnginfo-button")
    page.set_input_files("#pnginfo_image input[type=file]", str(png))
    page.wait_for_function("document.querySelector('#pnginfo_html_info').innerText.includes('Seed: 41')",
                           timeout=20000)
    page.click(f"#pnginfo_send_to_{button}")


def test_pnginfo_send_to_txt2img_then_generate(app: RunningApp, browser: Any, tmp_path: Path) -> None:
    png = _real_png(app, tmp_path)
    page = open_ui(browser, app.url)
    _send_from_pnginfo(page, png, "txt2img")
    page.wait_for_function("document.querySelector('#txt2img_prompt textarea')?.value === 'a cat'", timeout=20000)
    entries = override_entries(page, "txt2img")
    assert entries == ["Clip skip: 2"], entries  # no sigma/rho defaults: they equal the current settings
    page.click("#txt2img_generate")
    info = wait_for_seed(page, "txt2img", 41)
    assert "Clip skip: 2" in info


def test_pnginfo_send_to_img2img_keeps_inpaint_options(app: RunningApp, browser: Any, tmp_path: Path) -> None:
    png = _real_png(app, tmp_path)
    page = open_ui(browser, app.url)
    _send_from_pnginfo(page, png, "img2img")
    page.wait_for_function("document.querySelector('#img2img_prompt textarea')?.value === 'a cat'", timeout=20000)
    for elem_id, label in (("img2img_mask_mode", "Inpaint masked"), ("img2img_inpainting_fill", "original"),
                           ("img2img_inpaint_full_res", "Whole picture"), ("resize_mode", "Just resize")):
        checked = page.locator(f"#{elem_id} input:checked")
        assert checked.count() == 1, f"{elem_id} has no choice after the paste"
        assert checked.first.get_attribute("value") == label
    page.wait_for_selector("#img2img_image img", timeout=20000)
    page.click("#img2img_generate")
    info = wait_for_seed(page, "img2img", 41)
    assert "Clip skip: 2" in info and "Denoising strength" in info
