"""Face restoration that finds faces, as a user reaches it: Extras (GFPGAN) and txt2img "Restore faces".

The restorer is GFPGANv1.4.pth in GFPGAN's real architecture and key layout with random weights; the face detector
is RetinaFace in facexlib's `detection_Resnet50_Final.pth` layout with weights built so that it fires on bright
blobs (tests/face_fixtures.py). The first app starts with neither and downloads both on first use from a local
stand-in for GitHub (`GITHUB_ENDPOINT`) into `models/GFPGAN`, as A1111 does; the second has them in the folder. The restored face is
pasted back through a feathered mask: pixels away from the face stay exactly as they were. No face found → the
image is unchanged and nothing claims a restoration.
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png
from tests.acceptance.test_model_upscalers import ModelServer
from tests.face_fixtures import firing_retinaface, random_gfpgan_file

DETECTOR_URL = "/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth"
GFPGAN_URL = "/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth"


@pytest.fixture(scope="module")
def gfpgan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_gfpgan_file(tmp_path_factory.mktemp("gfpgan") / "GFPGANv1.4.pth")


def _pth(sd: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(sd, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(gfpgan: Path) -> Iterator[ModelServer]:
    running = ModelServer({DETECTOR_URL: _pth(firing_retinaface(box=320, face=160)),
                           GFPGAN_URL: gfpgan.read_bytes()})
    yield running
    running.close()


def _with_gfpgan(gfpgan: Path, detector: dict[str, torch.Tensor] | None = None) -> object:
    def prepare(data: Path) -> None:
        folder = data / "models" / "GFPGAN"
        folder.mkdir(parents=True)
        os.link(gfpgan, folder / "GFPGANv1.4.pth")
        if detector is not None:
            torch.save(detector, folder / "detection_Resnet50_Final.pth")

    return prepare


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory, gfpgan: Path, server: ModelServer) -> RunningApp:
    return webui_app(["--api", "--nowebui"], env={"GITHUB_ENDPOINT": server.url})  # no weights: A1111 downloads


def _b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _scene(blob: tuple[int, int] | None) -> Image.Image:
    """A dark, noisy 384×384 picture, with a bright 64-px "face" at `blob`."""
    pixels = np.random.default_rng(0).integers(0, 60, (384, 384, 3), dtype=np.uint8)
    if blob is not None:
        x, y = blob
        pixels[y:y + 64, x:x + 64] = 230
    return Image.fromarray(pixels)


def test_extras_restores_the_detected_face_and_nothing_else(app: RunningApp, server: ModelServer) -> None:
    detector_file = app.data_dir / "models" / "GFPGAN" / "detection_Resnet50_Final.pth"
    weights = app.data_dir / "models" / "GFPGAN" / "GFPGANv1.4.pth"
    assert not detector_file.exists() and not weights.exists()
    source = _scene((240, 60))
    response = app.client.post("/sdapi/v1/extra-single-image", json={"image": _b64(source),
                                                                   "gfpgan_visibility": 1.0})
    assert response.status_code == 200, response.text
    assert detector_file.is_file() and server.requests.count(DETECTOR_URL) == 1  # downloaded on first use
    assert weights.is_file() and server.requests.count(GFPGAN_URL) == 1
    out = np.asarray(decode_png(response.json()["image"]).convert("RGB"), dtype=np.int16)
    before = np.asarray(source, dtype=np.int16)
    assert out.shape == before.shape
    assert np.array_equal(out[200:], before[200:]) and np.array_equal(out[:, :150], before[:, :150])
    assert np.abs(out[60:124, 240:304] - before[60:124, 240:304]).mean() > 10  # the face was replaced
    assert "GFPGAN visibility: 1" in response.json()["html_info"]


def test_extras_without_a_face_changes_nothing_and_claims_nothing(app: RunningApp) -> None:
    source = _scene(None)
    response = app.client.post("/sdapi/v1/extra-single-image", json={"image": _b64(source),
                                                                   "gfpgan_visibility": 1.0})
    assert response.status_code == 200, response.text
    out = np.asarray(decode_png(response.json()["image"]).convert("RGB"))
    assert np.array_equal(out, np.asarray(source))
    html = response.json()["html_info"]
    assert "GFPGAN visibility" not in html and "no faces found" in html


def test_txt2img_restore_faces_restores_and_saves_the_copy_before(webui_app: WebUIFactory, gfpgan: Path) -> None:
    # a detector that always finds one face (at the brightest cell), placed in the folder by the user
    always = firing_retinaface(box=4000, always=True, face=320)
    running = webui_app(["--api", "--nowebui"], prepare=_with_gfpgan(gfpgan, always), env={"HF_HUB_OFFLINE": "1"})
    plain = running.txt2img(seed=5)
    restored = running.txt2img(seed=5, restore_faces=True, save_images=True,
                               override_settings={"face_restoration_model": "GFPGAN",
                                                  "save_images_before_face_restoration": True})
    info = json.loads(restored["info"])["infotexts"][0]
    assert "Face restoration: GFPGAN" in info
    a, b = (np.asarray(decode_png(d["images"][0]).convert("RGB"), dtype=np.int16) for d in (plain, restored))
    assert np.abs(a - b).mean() > 1
    copies = sorted((running.data_dir / "outputs").rglob("*-before-face-restoration.png"))
    assert len(copies) == 1
    assert np.array_equal(np.asarray(Image.open(copies[0]).convert("RGB"), dtype=np.int16), a)
