"""Extras over HTTP against a live `--nowebui` server: A1111 shapes (reference §12), a model upscaler found in
models/ESRGAN and loaded with spandrel, the lists, and 422 answers that name the bad field.

`extra-single-image` → `{image, html_info}`; `extra-batch-images` → `{images, html_info}`; images come back as PNG
with the original `parameters` chunk kept and the `postprocessing` chunk added.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from tests.integration.conftest import LiveServer, LiveServerFactory

GROWTH = 32


def tiny_esrgan_x2(seed: int = 0, nf: int = 4) -> dict[str, torch.Tensor]:
    """A ×2 ESRGAN in the original `RRDBNet` layout (one RRDB, growth 32, `nf` features), random weights."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}

    def conv(key: str, cin: int, cout: int) -> None:
        sd[f"{key}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) / (cin * 9) ** 0.5
        sd[f"{key}.bias"] = torch.zeros(cout)

    conv("model.0", 3, nf)
    for r in range(1, 4):
        for c in range(1, 6):
            conv(f"model.1.sub.0.RDB{r}.conv{c}.0", nf + (c - 1) * GROWTH, GROWTH if c < 5 else nf)
    conv("model.1.sub.1", nf, nf)
    conv("model.3", nf, nf)
    conv("model.5", nf, nf)
    conv("model.7", nf, 3)
    return sd


def png_b64(width: int = 24, height: int = 16, parameters: str | None = None, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")
    info = PngImagePlugin.PngInfo()
    if parameters:
        info.add_text("parameters", parameters)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=info)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


@pytest.fixture(scope="module")
def server(live_server: LiveServerFactory, tmp_path_factory: pytest.TempPathFactory) -> LiveServer:
    data = tmp_path_factory.mktemp("extras-data")
    esrgan = data / "models" / "ESRGAN"
    esrgan.mkdir(parents=True)
    torch.save(tiny_esrgan_x2(), esrgan / "2x_Tiny.pth")
    realesrgan = data / "models" / "RealESRGAN"
    realesrgan.mkdir(parents=True)
    torch.save(tiny_esrgan_x2(seed=1), realesrgan / "RealTiny_x2.pth")
    return live_server(["--nowebui", "--api", "--use-cpu", "all"], data_dir=data)


def post(server: LiveServer, path: str, body: dict[str, object]) -> dict[str, object]:
    response = server.client.post(f"/sdapi/v1/{path}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_lists_come_from_the_registries(server: LiveServer) -> None:
    names = [u["name"] for u in server.client.get("/sdapi/v1/upscalers").json()]
    assert names[:3] == ["None", "Lanczos", "Nearest"] and {"2x_Tiny", "RealTiny_x2"} <= set(names)
    assert {"ESRGAN_4x", "R-ESRGAN 4x+", "SwinIR 4x", "DAT x4"} <= set(names)  # A1111's named, downloaded on use
    assert names[3:] == sorted(names[3:], key=str.lower)
    real = server.client.get("/sdapi/v1/realesrgan-models").json()
    assert real[-1] == {"name": "RealTiny_x2", "path": str(server.data_dir / "models" / "RealESRGAN"
                                                           / "RealTiny_x2.pth"), "scale": 2}
    assert [r["name"] for r in real[:-1]] == ["R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B"]
    restorers = server.client.get("/sdapi/v1/face-restorers").json()
    assert [r["name"] for r in restorers] == ["CodeFormer", "GFPGAN"]
    assert restorers[1]["cmd_dir"] == str(server.data_dir / "models" / "GFPGAN")


def test_single_image_shape_size_and_metadata(server: LiveServer) -> None:
    body = post(server, "extra-single-image", {"image": png_b64(parameters="a cat\nSteps: 3"),
                                               "upscaler_1": "Lanczos", "upscaling_resize": 2})
    assert set(body) == {"image", "html_info"}
    assert body["html_info"] == "<p>Postprocess upscale by: 2, Postprocess upscaler: Lanczos</p>"
    image = decode(str(body["image"]))
    assert image.size == (48, 32)
    assert image.info["parameters"] == "a cat\nSteps: 3"
    assert image.info["postprocessing"] == "Postprocess upscale by: 2, Postprocess upscaler: Lanczos"


def test_single_image_with_a_spandrel_model_and_scale_to_crop(server: LiveServer) -> None:
    body = post(server, "extra-single-image", {"image": png_b64(), "upscaler_1": "2x_Tiny", "resize_mode": 1,
                                               "upscaling_resize_w": 40, "upscaling_resize_h": 40,
                                               "upscaling_crop": True})
    assert decode(str(body["image"])).size == (40, 40)
    assert "Postprocess upscale to: 40x40, Postprocess crop to: 40x40, Postprocess upscaler: 2x_Tiny" in str(
        body["html_info"])


def test_batch_shape_and_upscaler_2_blend(server: LiveServer) -> None:
    images = [{"data": png_b64(seed=1), "name": "one.png"}, {"data": png_b64(16, 16, seed=2), "name": "two.png"}]
    body = post(server, "extra-batch-images", {"imageList": images, "upscaler_1": "Nearest", "upscaler_2": "Lanczos",
                                               "extras_upscaler_2_visibility": 0.5, "upscaling_resize": 2})
    assert set(body) == {"images", "html_info"}
    assert [decode(str(b)).size for b in body["images"]] == [(48, 32), (32, 32)]  # type: ignore[union-attr]
    assert "Postprocess upscaler 2: Lanczos" in str(body["html_info"])


def test_face_restoration_without_weights_or_detector_is_explained(server: LiveServer) -> None:
    response = server.client.post("/sdapi/v1/extra-single-image", json={"image": png_b64(), "gfpgan_visibility": 1})
    assert response.status_code == 422 and "GFPGAN: no weights in" in response.json()["detail"]


def test_bad_input_is_422_naming_the_field(server: LiveServer) -> None:
    bad = server.client.post("/sdapi/v1/extra-single-image", json={"image": "!!not base64"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("image")
    bad_batch = server.client.post("/sdapi/v1/extra-batch-images",
                                   json={"imageList": [{"data": png_b64(), "name": "a"}, {"data": "??"}]})
    assert bad_batch.status_code == 422 and bad_batch.json()["detail"].startswith("imageList[1].data")
    unknown = server.client.post("/sdapi/v1/extra-single-image", json={"image": png_b64(), "upscaler_2": "Nope"})
    assert unknown.status_code == 422 and unknown.json()["detail"].startswith("upscaler_2: upscaler 'Nope'")
    out_of_range = server.client.post("/sdapi/v1/extra-single-image", json={"image": png_b64(),
                                                                            "upscaling_resize": 50})
    assert out_of_range.status_code == 422 and "upscaling_resize" in out_of_range.json()["detail"]
    assert server.client.get("/sdapi/v1/upscalers").status_code == 200  # still serving


def test_model_files_are_not_saved_by_the_api(server: LiveServer) -> None:
    post(server, "extra-single-image", {"image": png_b64(), "upscaler_1": "Lanczos"})
    assert not (Path(server.data_dir) / "outputs" / "extras-images").exists()
