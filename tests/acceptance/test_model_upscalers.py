"""Model upscalers everywhere A1111 offers them, as a user reaches them over the API.

A1111's named upscalers ("R-ESRGAN 4x+", "ESRGAN_4x", "SwinIR 4x", "ScuNET GAN/PSNR", "DAT x2/x3/x4") are listed
before their file exists and downloaded into their `models/` folder on first use. GitHub is replaced by a local
HTTP server (`GITHUB_ENDPOINT`, `HF_ENDPOINT`) that serves a tiny ESRGAN in the original `RRDBNet` key layout, so
spandrel loads it exactly like the released weights. Hires fix, img2img's `upscaler_for_img2img` and the SD upscale
script then run the model; offline or a wrong checksum is a 422 naming the reason, never a traceback.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png
from tests.unit.test_postprocessing_upscalers import rrdb_state_dict

ESRGAN_URL = "/cszn/KAIR/releases/download/v1.0/ESRGAN.pth"
REAL_4X_URL = "/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth"
DAT_X2_URL = "/w-e-w/DAT/resolve/main/experiments/pretrained_models/DAT/DAT_x2.pth"
HIRES = {"enable_hr": True, "hr_scale": 2, "hr_second_pass_steps": 1, "denoising_strength": 0.3}


class ModelServer:
    """A local stand-in for GitHub / Hugging Face: path → bytes, with the paths requested."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(self.path)
                body = owner.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _pth(sd: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(sd, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server() -> Iterator[ModelServer]:
    tiny = _pth(rrdb_state_dict(nf=8, nb=1, scale=4, seed=3))
    running = ModelServer({ESRGAN_URL: tiny, REAL_4X_URL: tiny, DAT_X2_URL: b"not the DAT weights"})
    yield running
    running.close()


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory, server: ModelServer) -> RunningApp:
    def prepare(data: Path) -> None:
        folder = data / "models" / "ESRGAN"
        folder.mkdir(parents=True)
        torch.save(rrdb_state_dict(nf=8, nb=1, scale=2, seed=5), folder / "2x_MyOwn.pth")

    return webui_app(["--api", "--nowebui"], prepare=prepare, env={"GITHUB_ENDPOINT": server.url, "HF_ENDPOINT": server.url})


def _png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _init_image(size: int = 32) -> str:
    ramp = np.tile(np.linspace(0, 255, size, dtype=np.uint8), (size, 1))
    return _png(Image.fromarray(np.stack([ramp, ramp.T, 255 - ramp], axis=2), "RGB"))


def _infotext(data: dict[str, Any]) -> str:
    return str(json.loads(data["info"])["infotexts"][0])


def test_named_models_are_listed_before_their_files_exist(app: RunningApp) -> None:
    listed = {e["name"]: e for e in app.client.get("/sdapi/v1/upscalers").json()}
    for name in ("ESRGAN_4x", "R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B", "SwinIR 4x", "ScuNET GAN", "ScuNET PSNR",
                 "DAT x2", "DAT x3", "DAT x4", "2x_MyOwn"):
        assert name in listed, name
    assert "R-ESRGAN 2x+" not in listed  # not in the default realesrgan_enabled_models
    assert listed["R-ESRGAN 4x+"]["model_url"].endswith("/v0.1.0/RealESRGAN_x4plus.pth")
    assert listed["R-ESRGAN 4x+"]["model_path"] == str(app.data_dir / "models" / "RealESRGAN"
                                                       / "RealESRGAN_x4plus.pth")
    assert listed["ESRGAN_4x"]["model_name"] == "ESRGAN" and listed["DAT x3"]["scale"] == 3
    names = list(listed)
    assert names[:3] == ["None", "Lanczos", "Nearest"]
    assert names[3:] == sorted(names[3:], key=str.lower)
    assert [e["name"] for e in app.client.get("/sdapi/v1/realesrgan-models").json()] == [
        "R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B"]


def test_enabled_model_settings_choose_the_named_entries(app: RunningApp) -> None:
    options = {"realesrgan_enabled_models": ["R-ESRGAN 2x+"], "dat_enabled_models": ["DAT x4"]}
    assert app.client.post("/sdapi/v1/options", json=options).status_code == 200
    try:
        listed = [e["name"] for e in app.client.get("/sdapi/v1/upscalers").json()]
        assert "R-ESRGAN 2x+" in listed and "R-ESRGAN 4x+" not in listed
        assert "DAT x4" in listed and "DAT x2" not in listed and "DAT x3" not in listed
    finally:
        defaults = {"realesrgan_enabled_models": ["R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B"],
                    "dat_enabled_models": ["DAT x2", "DAT x3", "DAT x4"]}
        app.client.post("/sdapi/v1/options", json=defaults)
        app.client.get("/sdapi/v1/upscalers")


def test_hires_fix_downloads_and_runs_a_named_model_upscaler(app: RunningApp, server: ModelServer) -> None:
    target = app.data_dir / "models" / "RealESRGAN" / "RealESRGAN_x4plus.pth"
    assert not target.exists()
    model = app.txt2img(**HIRES, hr_upscaler="R-ESRGAN 4x+")
    assert target.is_file() and server.requests.count(REAL_4X_URL) == 1
    assert "Hires upscaler: R-ESRGAN 4x+" in _infotext(model)
    lanczos = app.txt2img(**HIRES, hr_upscaler="Lanczos")
    a, b = (np.asarray(decode_png(d["images"][0]).convert("RGB"), dtype=np.int16) for d in (model, lanczos))
    assert a.shape == b.shape == (128, 128, 3)
    assert np.abs(a - b).mean() > 1  # the random-weight ESRGAN's upscale, not a Lanczos resize
    again = app.txt2img(**HIRES, hr_upscaler="R-ESRGAN 4x+")
    assert np.array_equal(np.asarray(decode_png(again["images"][0])), np.asarray(decode_png(model["images"][0])))
    assert server.requests.count(REAL_4X_URL) == 1  # downloaded once, then read from models/RealESRGAN


def test_hires_fix_runs_a_model_file_by_its_name(app: RunningApp) -> None:
    data = app.txt2img(**HIRES, hr_upscaler="2x_MyOwn")
    assert "Hires upscaler: 2x_MyOwn" in _infotext(data)


def test_unknown_hires_upscaler_is_a_422_listing_the_choices(app: RunningApp) -> None:
    response = app.client.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "steps": 1,
                                                          **HIRES, "hr_upscaler": "No Such Upscaler"})
    assert response.status_code == 422
    assert "No Such Upscaler" in response.text and "R-ESRGAN 4x+" in response.text


def test_img2img_upscaler_setting_downloads_and_uses_esrgan_4x(app: RunningApp, server: ModelServer) -> None:
    target = app.data_dir / "models" / "ESRGAN" / "ESRGAN_4x.pth"
    body = {"prompt": "a cat", "init_images": [_init_image(32)], "width": 64, "height": 64, "steps": 2, "seed": 3,
            "denoising_strength": 0.0001, "sampler_name": "Euler"}
    plain = app.client.post("/sdapi/v1/img2img", json=body)
    assert plain.status_code == 200 and not target.exists()
    upscaled = app.client.post("/sdapi/v1/img2img", json={
        **body, "override_settings": {"upscaler_for_img2img": "ESRGAN_4x"}})
    assert upscaled.status_code == 200, upscaled.text
    assert target.is_file() and ESRGAN_URL in server.requests
    a, b = (np.asarray(decode_png(r.json()["images"][0]).convert("RGB"), dtype=np.int16) for r in (plain, upscaled))
    assert np.abs(a - b).mean() > 1


def test_sd_upscale_script_offers_and_runs_model_upscalers(app: RunningApp) -> None:
    info = app.client.get("/sdapi/v1/script-info").json()
    script = next(s for s in info if s["name"] == "sd upscale" and s["is_img2img"])
    radio = next(a for a in script["args"] if a["label"] == "Upscaler")
    assert "R-ESRGAN 4x+" in radio["choices"] and "2x_MyOwn" in radio["choices"]
    response = app.client.post("/sdapi/v1/img2img", json={
        "prompt": "a cat", "init_images": [_init_image(64)], "width": 64, "height": 64, "steps": 1, "seed": 3,
        "denoising_strength": 0.2, "script_name": "SD upscale", "script_args": ["", 16, "2x_MyOwn", 2.0]})
    assert response.status_code == 200, response.text
    assert decode_png(response.json()["images"][0]).size == (128, 128)


def test_a_wrong_checksum_is_a_422_and_leaves_no_file(app: RunningApp) -> None:
    response = app.client.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "steps": 1,
                                                          **HIRES, "hr_upscaler": "DAT x2"})
    assert response.status_code == 422
    assert "sha256 mismatch" in response.text and "DAT_x2.pth" in response.text
    assert not (app.data_dir / "models" / "DAT" / "DAT_x2.pth").exists()


def test_extras_with_a_model_that_cannot_be_downloaded_is_a_422(app: RunningApp) -> None:
    response = app.client.post("/sdapi/v1/extra-single-image", json={
        "image": _init_image(32), "upscaling_resize": 2, "upscaler_1": "DAT x2"})
    assert response.status_code == 422
    assert "sha256 mismatch" in response.text


def test_extras_downloads_and_runs_a_named_model(app: RunningApp) -> None:
    response = app.client.post("/sdapi/v1/extra-single-image", json={
        "image": _init_image(32), "upscaling_resize": 4, "upscaler_1": "ESRGAN_4x"})
    assert response.status_code == 200, response.text
    assert decode_png(response.json()["image"]).size == (128, 128)
    assert (app.data_dir / "models" / "ESRGAN" / "ESRGAN_4x.pth").is_file()


def test_offline_download_is_a_422_saying_where_to_put_the_file(webui_app: WebUIFactory) -> None:
    offline = webui_app(["--api", "--nowebui"], env={"HF_HUB_OFFLINE": "1"})
    response = offline.client.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "steps": 1,
                                                              **HIRES, "hr_upscaler": "R-ESRGAN 4x+"})
    assert response.status_code == 422
    assert "could not be downloaded" in response.text and "RealESRGAN_x4plus.pth" in response.text


def test_the_ui_offers_model_upscalers_for_hires_fix_and_img2img(webui_app: WebUIFactory) -> None:
    def prepare(data: Path) -> None:
        (data / "models" / "ESRGAN").mkdir(parents=True)
        torch.save(rrdb_state_dict(nf=8, nb=1, scale=2, seed=5), data / "models" / "ESRGAN" / "2x_MyOwn.pth")

    ui = webui_app(["--api"], prepare=prepare, env={"HF_HUB_OFFLINE": "1"})
    components = ui.client.get("/config").json()["components"]

    def choices(elem_id: str) -> list[str]:
        props = next(c["props"] for c in components if c.get("props", {}).get("elem_id") == elem_id)
        return [c[1] if isinstance(c, list | tuple) else c for c in props["choices"]]

    hires = choices("txt2img_hr_upscaler")
    assert hires[:6] == ["Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
                         "Latent (nearest)", "Latent (nearest-exact)"]
    assert {"None", "Lanczos", "R-ESRGAN 4x+", "ESRGAN_4x", "SwinIR 4x", "2x_MyOwn"} <= set(hires)


def test_settings_offer_the_upscalers_and_restorers_of_the_app(tmp_path: Path) -> None:
    """The Settings dropdowns `upscaler_for_img2img` / `face_restoration_model` list the registries (A1111:
    `shared.sd_upscalers`, `shared.face_restorers`); the settings page renders lazily, so the choice function is
    asked directly with the registries `create_app` builds."""
    from types import SimpleNamespace

    from modules.postprocessing import build_registries
    from modules.settings.registry import REGISTRY
    from modules.ui.settings_tab import dynamic_choices

    (tmp_path / "ESRGAN").mkdir()
    torch.save(rrdb_state_dict(), tmp_path / "ESRGAN" / "2x_MyOwn.pth")
    upscalers, restorers = build_registries(SimpleNamespace(upscaler_dirs={"ESRGAN": tmp_path / "ESRGAN"},
                                                            models_dir=tmp_path))
    ctx = SimpleNamespace(upscalers=upscalers, face_restorers=restorers)
    img2img = dynamic_choices(ctx, REGISTRY["upscaler_for_img2img"])  # type: ignore[arg-type]
    assert img2img is not None and {"None", "R-ESRGAN 4x+", "2x_MyOwn"} <= set(img2img)
    assert dynamic_choices(ctx, REGISTRY["face_restoration_model"]) == ["CodeFormer", "GFPGAN"]  # type: ignore[arg-type]
