"""`img2img_inpaint_mask_high_contrast` (A1111/Forge, default on: "use a checkerboard brush pattern instead of color
brush") as a user sees it in img2img → Inpaint: strokes drawn on the image show as a black/white checkerboard
whatever the image's colours, and Generate still inpaints with the painted mask; with the setting off the strokes
show in the plain `img2img_inpaint_mask_brush_color` (white), and the mask the editor holds is the same either way.

The editor draws with pixi.js into one WebGL canvas, which cannot be read back from the page; its pixels are read
from its pixi renderer, found through pixi's devtools hook `__PIXI_APP_INIT__` (the page script
javascript/inpaint-high-contrast.js chains to whatever was installed before it, as here)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.acceptance.conftest import RunningApp, WebUIFactory, set_number
from tests.acceptance.test_img2img_tabs import draw, generate, upload
from tests.browser.conftest import fill_text

pytestmark = pytest.mark.browser

RECORD_APPS = "window.__testPixiApps = []; globalThis.__PIXI_APP_INIT__ = (a) => window.__testPixiApps.push(a);"
PAINTED = """(a) => { let n = 0;
  for (const group of a.stage.children) { if (!group.children.some((c) => c.zIndex === -1)) continue;
    for (const layer of group.children) { if (layer.zIndex === -1 || layer.visible === false) continue;
      const px = a.renderer.extract.pixels({target: layer, resolution: 1}).pixels; let m = 0;
      for (let i = 3; i < px.length; i += 4) if (px[i] > 0) m++;
      n = Math.max(n, m); } }
  return n; }"""
EDITOR_APP = f"""(() => {{ const painted = {PAINTED}; let best = null, most = -1;
  for (const a of window.__testPixiApps) {{
    if (!a.canvas || !a.canvas.isConnected || !a.canvas.closest('#img2maskimg')) continue;
    const n = painted(a); if (n >= most) {{ best = a; most = n; }} }}
  return [best, most]; }})()"""
STAGE_PNG = f"() => {{ const a = {EDITOR_APP}[0]; return a.renderer.extract.canvas(a.stage).toDataURL('image/png'); }}"
LAYER_ALPHA = f"() => {EDITOR_APP}[1]"
"""Painted pixels of the Inpaint editor's layer (what it sends as the mask); if the editor made more than one pixi
application (it can remount on a slow machine), the one that holds the stroke."""


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    running = webui_app(["--api"])
    running.wait_for_model()
    return running


def _paint(app: RunningApp, browser: Any, tmp_path: Path, seed: int | None) -> tuple[np.ndarray, int, str]:
    """Open Inpaint, upload a blue image, drag a stroke; (opaque RGB pixels the editor shows, painted mask pixels,
    the infotext of a generation when `seed` is given)."""
    blue = tmp_path / "blue.png"
    Image.new("RGB", (256, 256), (30, 30, 200)).save(blue)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    try:
        page.add_init_script(RECORD_APPS)
        page.goto(app.url + "/")
        page.wait_for_selector("body[data-sd-ready='1']", timeout=60000)
        page.click("#tab_img2img-button")
        page.click("#img2img_inpaint_tab-button")
        page.wait_for_timeout(1000)
        upload(page, "img2maskimg", blue)
        mask_pixels = 0
        for _attempt in range(4):  # a drag right after the upload can be lost on a loaded machine
            draw(page, "img2maskimg")
            page.wait_for_timeout(1000)  # the overlay is recomposed shortly after the stroke
            mask_pixels = max(0, page.evaluate(LAYER_ALPHA))
            if mask_pixels:
                break
        url = page.evaluate(STAGE_PNG)
        info = ""
        if seed is not None:
            fill_text(page, "img2img_prompt", "a cat")
            set_number(page, "img2img_width", 64)
            set_number(page, "img2img_height", 64)
            set_number(page, "img2img_steps", 2)
            set_number(page, "img2img_seed", seed)
            info = generate(page, seed)
    finally:
        page.close()
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGBA"), dtype=np.int16)
    return image[image[..., 3] > 200][:, :3], mask_pixels, info


def _counts(pixels: np.ndarray) -> tuple[int, int, int]:
    """(black, white, blue) pixels."""
    black = int((pixels.sum(axis=1) < 60).sum())
    white = int((pixels.min(axis=1) > 230).sum())
    blue = int(((pixels[:, 2] > 150) & (pixels[:, 0] < 80)).sum())
    return black, white, blue


def test_mask_strokes_are_a_checkerboard_only_with_the_setting(app: RunningApp, browser: Any, tmp_path: Path) -> None:
    on, mask_on, info = _paint(app, browser, tmp_path, seed=21)
    black_on, white_on, blue_on = _counts(on)
    assert mask_on > 200, ("the stroke must reach the mask layer", black_on, white_on, blue_on, info)
    assert black_on > 100 and white_on > 100 and blue_on > 1000, (black_on, white_on, blue_on)
    assert "Mask blur: 4" in info  # the generation used the painted mask (written only with a mask)

    response = app.client.post("/sdapi/v1/options", json={"img2img_inpaint_mask_high_contrast": False})
    assert response.status_code == 200
    off, mask_off, _ = _paint(app, browser, tmp_path, seed=None)
    black_off, white_off, blue_off = _counts(off)
    assert mask_off > 200
    assert black_off < 20 and white_off > 100 and blue_off > 1000, (black_off, white_off, blue_off)  # white brush
    assert abs(mask_off - mask_on) <= mask_on * 0.1, (mask_on, mask_off)  # the same mask either way
