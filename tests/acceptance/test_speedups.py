"""Token merging and Hypertile as A1111 users reach them: the settings (per request through `override_settings`)
change the image and write A1111's infotext keys; off (the defaults, or ratio 0) gives the same pixels as never
having them.

The tiny checkpoint's VAE downscales by 2, so a 64x64 image has a 32x32 latent (1024 tokens in the UNet's first
level) and a 128x128 one a 64x64 latent, which Hypertile's default 256-pixel tiles (32 tokens) split in 2x2.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png

HIRES = {"enable_hr": True, "hr_scale": 1.5, "hr_upscaler": "Latent", "hr_second_pass_steps": 2,
         "denoising_strength": 0.6}


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    return webui_app(["--api"])


def _pixels(data: dict[str, Any]) -> tuple[np.ndarray, str]:
    pixels = np.asarray(decode_png(data["images"][0]).convert("RGB"), dtype=np.int16)
    return pixels, json.loads(data["info"])["infotexts"][0]


def generate(app: RunningApp, **payload: Any) -> tuple[np.ndarray, str]:
    """(pixels of the first image, its infotext) of a txt2img request."""
    return _pixels(app.txt2img(steps=3, **payload))


def img2img(app: RunningApp, **payload: Any) -> tuple[np.ndarray, str]:
    gradient = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1))
    init = Image.fromarray(np.stack([gradient, gradient.T, 255 - gradient], axis=2), "RGB")
    buffer = io.BytesIO()
    init.save(buffer, format="PNG")
    body = {"prompt": "a cat", "init_images": [base64.b64encode(buffer.getvalue()).decode("ascii")], "width": 64,
            "height": 64, "steps": 4, "seed": 3, "sampler_name": "Euler", "denoising_strength": 0.8, **payload}
    response = app.client.post("/sdapi/v1/img2img", json=body)
    assert response.status_code == 200, response.text
    return _pixels(response.json())


def test_token_merging_changes_the_image_and_is_written(app: RunningApp) -> None:
    off, off_info = generate(app)
    zero, _ = generate(app, override_settings={"token_merging_ratio": 0})
    merged, info = generate(app, override_settings={"token_merging_ratio": 0.5})
    again, _ = generate(app, override_settings={"token_merging_ratio": 0.5})
    assert np.array_equal(zero, off)  # ratio 0 = no merging, bit for bit
    assert np.abs(merged - off).mean() > 0
    assert np.array_equal(again, merged)
    assert "Token merging ratio: 0.5" in info
    assert "Token merging" not in off_info


def test_hires_ratio_overrides_the_first_pass_ratio(app: RunningApp) -> None:
    plain, _ = generate(app, **HIRES)
    hr_only, info = generate(app, **HIRES, override_settings={"token_merging_ratio_hr": 0.5})
    assert np.abs(hr_only - plain).mean() > 0
    assert "Token merging ratio hr: 0.5" in info
    assert "Token merging ratio: " not in info
    both, info = generate(app, **HIRES, override_settings={"token_merging_ratio": 0.3})
    assert "Token merging ratio: 0.3" in info and "Token merging ratio hr: 0.3" in info  # hr falls back to it
    assert not np.array_equal(both, hr_only)


def test_img2img_ratio(app: RunningApp) -> None:
    plain, plain_info = img2img(app)
    merged, info = img2img(app, override_settings={"token_merging_ratio_img2img": 0.5})
    assert np.abs(merged - plain).mean() > 0
    assert "Token merging ratio: 0.5" in info
    assert "Token merging" not in plain_info


def test_hypertile_unet_changes_the_image_and_is_written(app: RunningApp) -> None:
    size = {"width": 128, "height": 128}
    off, off_info = generate(app, **size)
    tiled, info = generate(app, **size, override_settings={"hypertile_enable_unet": True})
    again, _ = generate(app, **size, override_settings={"hypertile_enable_unet": True})
    assert np.abs(tiled - off).mean() > 0
    assert np.array_equal(again, tiled)  # the tile choices are seeded
    assert "Hypertile U-Net: True" in info
    assert "max tile size" not in info  # default values are not written (A1111)
    assert "Hypertile" not in off_info
    # a tile as large as the latent attends globally: the same pixels, the non-default value in the infotext
    whole, info = generate(app, **size, override_settings={"hypertile_enable_unet": True,
                                                           "hypertile_max_tile_unet": 512})
    assert np.array_equal(whole, off)
    assert "Hypertile U-Net: True, Hypertile U-Net max tile size: 512" in info
    # the switch alone decides: other hypertile settings change nothing while it is off
    assert np.array_equal(generate(app, **size, override_settings={"hypertile_max_tile_unet": 64})[0], off)


def test_hypertile_second_pass_only(app: RunningApp) -> None:
    plain, _ = generate(app, **HIRES)
    tiled, info = generate(app, **HIRES, override_settings={"hypertile_enable_unet_secondpass": True,
                                                            "hypertile_max_tile_unet": 64})
    assert np.abs(tiled - plain).mean() > 0
    assert "Hypertile U-Net second pass: True, Hypertile U-Net max tile size: 64" in info
    assert "Hypertile U-Net: " not in info
    alone, info = generate(app, override_settings={"hypertile_enable_unet_secondpass": True})
    assert np.array_equal(alone, generate(app)[0])  # no hires pass, nothing tiles
    assert "Hypertile" not in info


def test_hypertile_vae(app: RunningApp) -> None:
    off, _ = generate(app)
    tiled, info = generate(app, override_settings={"hypertile_enable_vae": True})
    assert np.abs(tiled - off).mean() > 0
    assert "Hypertile VAE: True" in info
    _, info = generate(app, override_settings={"hypertile_enable_vae": True, "hypertile_swap_size_vae": 2})
    assert "Hypertile VAE: True, Hypertile VAE swap size: 2" in info
