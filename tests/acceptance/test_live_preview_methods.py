"""Live preview methods and TAESD encode/decode, through the app as `./webui.sh` builds it.

The Approx NN and TAESD weight files are written into the data dir (`models/VAE-approx`, `models/VAE-taesd`) in
their original key layouts (random weights), or served by a local HTTP server standing in for GitHub
(`GITHUB_ENDPOINT`) to prove the first-use download; a file that cannot be had falls back to "Approx cheap".
"""

from __future__ import annotations

import base64
import functools
import http.server
import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from modules.models.nn.taesd import taesd_decoder, taesd_encoder
from modules.models.nn.vae import AutoencoderKL, VAEConfig
from modules.models.nn.vae_approx import VAEApprox
from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png


def _weights(net: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) * 0.1 for k, v in net.state_dict().items()}


def write_networks(folder: Path, *, approx: bool = True, taesd: bool = True) -> None:
    """Random-weight network files where A1111 keeps them (`<folder>/models/VAE-approx`, `.../VAE-taesd`)."""
    if approx:
        (folder / "models" / "VAE-approx").mkdir(parents=True, exist_ok=True)
        torch.save(_weights(VAEApprox(), 1), folder / "models" / "VAE-approx" / "model.pt")
    if taesd:
        (folder / "models" / "VAE-taesd").mkdir(parents=True, exist_ok=True)
        torch.save(_weights(taesd_decoder(), 2), folder / "models" / "VAE-taesd" / "taesd_decoder.pth")
        torch.save(_weights(taesd_encoder(), 3), folder / "models" / "VAE-taesd" / "taesd_encoder.pth")


def with_8x_vae(folder: Path) -> None:
    """Give the tiny checkpoint a VAE with SD's 8× latent factor (four levels, random weights): TAESD works on the
    latents of every SD VAE, which are 1/8 of the image size (the tiny test VAE has a factor of 2)."""
    checkpoint = folder / "models" / "Stable-diffusion" / "sd1.safetensors"
    state = {k: v for k, v in load_file(str(checkpoint)).items() if not k.startswith("first_stage_model.")}
    torch.manual_seed(0)
    vae = AutoencoderKL(VAEConfig(ch=32, ch_mult=(1, 1, 1, 1), num_res_blocks=1))
    state.update({f"first_stage_model.{k}": v.contiguous() for k, v in vae.state_dict().items()})
    save_file(state, str(checkpoint))


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> Iterator[RunningApp]:
    def prepare(folder: Path) -> None:
        with_8x_vae(folder)
        write_networks(folder)

    yield webui_app(["--api"], prepare=prepare)


def last_preview(app: RunningApp, **settings: Any) -> Image.Image:
    """The newest live preview a client polls from GET /sdapi/v1/progress while a job samples."""
    result: dict[str, Any] = {}
    job = threading.Thread(target=lambda: result.update(app.txt2img(
        steps=10, override_settings={"show_progress_every_n_steps": 1, "show_progress_grid": False, **settings})))
    job.start()
    image = None
    try:
        while image is None and job.is_alive():
            body = app.client.get("/sdapi/v1/progress").json()
            if body["current_image"] and body["state"]["sampling_step"] >= 2:
                image = Image.open(io.BytesIO(base64.b64decode(body["current_image"])))
            time.sleep(0.05)
    finally:
        job.join()
    assert image is not None and result, "no live preview while the job ran"
    return image.convert("RGB")


def test_each_preview_method_gives_its_own_preview(app: RunningApp) -> None:
    previews = {m: last_preview(app, show_progress_type=m) for m in ("Approx cheap", "Approx NN", "TAESD", "Full")}
    # 64×64 image = 8×8 latent: cheap one pixel per latent cell, Approx NN twice that, TAESD/Full full size
    assert {m: p.size for m, p in previews.items()} == {
        "Approx cheap": (8, 8), "Approx NN": (16, 16), "TAESD": (64, 64), "Full": (64, 64)}
    assert not np.array_equal(np.asarray(previews["TAESD"]), np.asarray(previews["Full"]))
    cheap_up = np.asarray(previews["Approx cheap"].resize((16, 16), Image.NEAREST))
    assert not np.array_equal(np.asarray(previews["Approx NN"]), cheap_up)


def _generate(app: RunningApp, endpoint: str, **settings: Any) -> tuple[np.ndarray, str]:
    body: dict[str, Any] = {"prompt": "a cat", "width": 64, "height": 64, "steps": 2, "seed": 1,
                            "sampler_name": "Euler", "override_settings": settings}
    if endpoint == "img2img":
        init = Image.new("RGB", (64, 64), (200, 60, 30))
        buffer = io.BytesIO()
        init.save(buffer, format="PNG")
        body.update(init_images=[base64.b64encode(buffer.getvalue()).decode()], denoising_strength=0.3)
    response = app.client.post(f"/sdapi/v1/{endpoint}", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    return np.asarray(decode_png(data["images"][0]).convert("RGB")), json.loads(data["info"])["infotexts"][0]


def test_vae_decode_method_taesd_decodes_with_taesd(app: RunningApp) -> None:
    full, full_info = _generate(app, "txt2img")
    fast, fast_info = _generate(app, "txt2img", sd_vae_decode_method="TAESD")
    assert not np.array_equal(full, fast)
    assert "VAE Decoder: TAESD" in fast_info and "VAE Decoder" not in full_info


def test_vae_encode_method_taesd_encodes_the_init_image(app: RunningApp) -> None:
    full, full_info = _generate(app, "img2img")
    fast, fast_info = _generate(app, "img2img", sd_vae_encode_method="TAESD")
    assert not np.array_equal(full, fast)
    assert "VAE Encoder: TAESD" in fast_info and "VAE Encoder" not in full_info


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_taesd_downloads_on_first_use_and_missing_files_fall_back(webui_app: WebUIFactory, tmp_path: Path) -> None:
    # a stand-in for github.com: /madebyollin/taesd/raw/main/taesd_decoder.pth only (no Approx NN file)
    served = tmp_path / "github"
    write_networks(served, approx=False)
    target = served / "madebyollin" / "taesd" / "raw" / "main"
    target.mkdir(parents=True)
    (served / "models" / "VAE-taesd" / "taesd_decoder.pth").rename(target / "taesd_decoder.pth")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        running = webui_app(["--api"], env={"GITHUB_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}"})
        assert last_preview(running, show_progress_type="TAESD").size == (256, 256)  # 8× the 32×32 latent
        downloaded = running.data_dir / "models" / "VAE-taesd" / "taesd_decoder.pth"
        assert downloaded.read_bytes() == (target / "taesd_decoder.pth").read_bytes()
        # model.pt is not on the server: "Approx cheap" previews, the job succeeds, one line says what to do
        assert last_preview(running, show_progress_type="Approx NN").size == (32, 32)
        assert last_preview(running, show_progress_type="Approx NN").size == (32, 32)
        wanted = str(running.data_dir / "models" / "VAE-approx" / "model.pt")
        lines = [line for line in running.console.splitlines() if wanted in line and "by hand" in line]
        assert len(lines) == 1, lines
        # the tiny test checkpoint's VAE makes 1/2-size latents, which TAESD cannot stand in for: the full VAE
        # encodes and decodes and the job says why (no 500, no TAESD infotext)
        response = running.client.post("/sdapi/v1/txt2img", json={
            "prompt": "a cat", "width": 64, "height": 64, "steps": 2, "seed": 1, "sampler_name": "Euler",
            "override_settings": {"sd_vae_decode_method": "TAESD"}})
        assert response.status_code == 200, response.text
        info = json.loads(response.json()["info"])
        assert any("1/8-size" in notice for notice in info["notices"]), info["notices"]
        assert "VAE Decoder" not in info["infotexts"][0]
    finally:
        server.shutdown()
