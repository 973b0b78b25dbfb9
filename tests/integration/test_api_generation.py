"""txt2img / img2img through the live API with a tiny random-weight SD1 checkpoint.

A1111 response facts (reference §12): `images` are raw base64 (no `data:` prefix) PNGs with the infotext in the
`parameters` chunk; `parameters` echoes the request (img2img: `init_images`/`mask` null unless
`include_init_images`); `info` is a JSON *string*; a request without `sampler_name` uses `sampler_index` ("Euler");
legacy names such as "DPM++ 2M Karras" still work; `send_images=false` → `images: []`; `save_images=true` writes to
the output folders. Skipped until the generation pipeline (`modules.processing.run`) exists.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import threading
from pathlib import Path

import pytest
from PIL import Image

from tests.integration.conftest import LiveServer, LiveServerFactory

SMALL = {"prompt": "a red cube", "negative_prompt": "blurry", "steps": 2, "width": 64, "height": 64, "seed": 1234,
         "cfg_scale": 5}


@pytest.fixture(scope="module")
def server(live_server: LiveServerFactory, tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint) -> LiveServer:
    data = tmp_path_factory.mktemp("gen-data")
    target = data / "models" / "Stable-diffusion"
    target.mkdir(parents=True)
    shutil.copy2(tiny_checkpoint("sd1"), target / "tiny-sd1.safetensors")
    srv = live_server(["--nowebui", "--api"], data_dir=data)
    srv.ctx.models.load(None)
    return srv


def _decode(b64: str) -> Image.Image:
    assert not b64.startswith("data:")
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def _png_b64(size: tuple[int, int] = (64, 64)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_txt2img_response_shape(server: LiveServer) -> None:
    response = server.client.post("/sdapi/v1/txt2img", json=SMALL)
    assert response.status_code == 200, response.text
    data = response.json()
    assert set(data) == {"images", "parameters", "info"}
    assert len(data["images"]) == 1
    image = _decode(data["images"][0])
    assert image.format == "PNG" and image.size == (64, 64)
    assert "Steps: 2" in image.info["parameters"] and "Seed: 1234" in image.info["parameters"]
    assert data["parameters"]["prompt"] == "a red cube" and data["parameters"]["steps"] == 2
    info = json.loads(data["info"])
    assert info["seed"] == 1234 and info["all_seeds"] == [1234] and info["width"] == 64
    assert info["sampler_name"] == "Euler"  # sampler_index default
    assert info["infotexts"][0] == image.info["parameters"]


@pytest.mark.parametrize(("request_fields", "sampler"), [
    ({"sampler_name": "DPM++ 2M Karras"}, "DPM++ 2M"),
    ({"sampler_index": "Euler a"}, "Euler a"),
    ({"sampler_name": "k_lms"}, "LMS"),
])
def test_sampler_names_and_legacy_fields(server: LiveServer, request_fields: dict, sampler: str) -> None:
    response = server.client.post("/sdapi/v1/txt2img", json={**SMALL, **request_fields})
    assert response.status_code == 200, response.text
    assert json.loads(response.json()["info"])["sampler_name"] == sampler


def test_send_images_false_and_save_images(server: LiveServer) -> None:
    response = server.client.post("/sdapi/v1/txt2img", json={**SMALL, "send_images": False})
    assert response.status_code == 200 and response.json()["images"] == []
    outputs = Path(server.data_dir) / "outputs" / "txt2img-images"
    before = set(outputs.rglob("*.png")) if outputs.exists() else set()
    saved = server.client.post("/sdapi/v1/txt2img", json={**SMALL, "save_images": True})
    assert saved.status_code == 200
    assert len(set(outputs.rglob("*.png")) - before) == 1


def test_img2img_echo_hides_init_images_unless_asked(server: LiveServer) -> None:
    body = {**SMALL, "init_images": [_png_b64()], "denoising_strength": 0.5}
    response = server.client.post("/sdapi/v1/img2img", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["parameters"]["init_images"] is None and data["parameters"]["mask"] is None
    assert _decode(data["images"][0]).size == (64, 64)
    again = server.client.post("/sdapi/v1/img2img", json={**body, "include_init_images": True})
    assert again.json()["parameters"]["init_images"] == body["init_images"]


def test_concurrent_requests_all_complete_in_order(server: LiveServer) -> None:
    results: dict[int, int] = {}

    def run(seed: int) -> None:
        response = server.client.post("/sdapi/v1/txt2img", json={**SMALL, "seed": seed})
        results[seed] = json.loads(response.json()["info"])["seed"] if response.status_code == 200 else -1

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert results == {1: 1, 2: 2, 3: 3}
    assert server.client.get("/sdapi/v1/progress").json()["state"]["job_count"] == 0
