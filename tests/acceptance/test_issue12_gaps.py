"""Issue 12 items whose user-visible part had no acceptance test yet (audit /work/audit/issue12.md), built only
through `create_app` from flags and a data dir and driven over HTTP:
* item 2 — a checkpoint's per-model VAE preference (`<stem>.json` "vae", A1111 user metadata) is used with
  `sd_vae` Automatic, and an explicit `sd_vae` wins over it while `sd_vae_overrides_per_model_preferences` is on;
* item 14 — a UNet that gives NaN in fp32 fails the job with a message that does not tell the user to add
  `--precision full` / `--no-half` (they cannot help); `--use-cpu all` on a machine without a GPU starts and
  generates without a "has no effect" warning."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.acceptance.conftest import WebUIFactory
from tests.acceptance.test_models_wiring import _pixels, _write_vae
from tests.conftest import TinyCheckpointFactory
from tests.integration.test_app_start import REPO, SMALL, Process, clean_env, free_port

CHECKPOINT = Path("models") / "Stable-diffusion" / "sd1.safetensors"


def test_per_model_vae_preference_is_used_and_an_explicit_sd_vae_overrides_it(webui_app: WebUIFactory) -> None:
    plain = _pixels(webui_app(["--api"]))

    def prepare(data: Path) -> None:
        _write_vae(data / CHECKPOINT, data / "models" / "VAE" / "bright.safetensors", 3.0)
        (data / CHECKPOINT).with_suffix(".json").write_text(json.dumps({"vae": "bright.safetensors"}))

    app = webui_app(["--api"], prepare=prepare)
    preferred = _pixels(app)
    assert np.abs(preferred - plain).mean() > 5, "the checkpoint's preferred VAE must decode the image"
    assert "VAE: bright.safetensors" in json.loads(app.txt2img()["info"])["infotexts"][0]
    assert app.client.post("/sdapi/v1/options", json={"sd_vae": "None"}).status_code == 200
    assert np.array_equal(_pixels(app), plain), "an explicit sd_vae overrides the per-model preference"
    answer = app.client.post("/sdapi/v1/options", json={"sd_vae_overrides_per_model_preferences": False})
    assert answer.status_code == 200
    assert np.array_equal(_pixels(app), preferred), "without the override, the preference wins again"


def test_nan_in_full_precision_does_not_suggest_precision_flags(webui_app: WebUIFactory) -> None:
    def prepare(data: Path) -> None:
        state = load_file(str(data / CHECKPOINT))
        key = next(k for k in state if k.startswith("model.diffusion_model.out.") and k.endswith("weight"))
        state[key] = torch.full_like(state[key], float("nan"))
        save_file(state, str(data / CHECKPOINT))

    app = webui_app(["--api", "--precision", "full", "--no-half"], prepare=prepare)
    app.wait_for_model()
    response = app.client.post("/sdapi/v1/txt2img", json={"prompt": "a cat", "width": 64, "height": 64,
                                                          "steps": 2, "seed": 1})
    assert response.status_code >= 400
    text = response.text
    assert "NaN" in text and "full precision" in text, text
    assert "--precision full" not in text and "--no-half" not in text, text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without an NVIDIA GPU")
def test_use_cpu_all_starts_generates_and_warns_nothing_about_it(tmp_path: Path,
                                                                 tiny_checkpoint: TinyCheckpointFactory) -> None:
    """`python webui.py --use-cpu all` as launch.py runs it: the start-up console says the device and no flag
    "has no effect" (before: "--use-cpu has no effect"), and a job runs."""
    data = tmp_path / "data"
    (data / CHECKPOINT).parent.mkdir(parents=True)
    (data / CHECKPOINT).symlink_to(tiny_checkpoint("sd1"))
    port = free_port()
    proc = Process([sys.executable, str(REPO / "webui.py"), "--api", "--use-cpu", "all", "--port", str(port),
                    "--data-dir", str(data)], clean_env(), tmp_path / "webui.log")
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/", timeout=240)
        response = httpx.post(f"http://127.0.0.1:{port}/sdapi/v1/txt2img", json=SMALL, timeout=120)
        assert response.status_code == 200, response.text
        text = proc.output()
        assert "Device: cpu" in text and "has no effect" not in text, text
    finally:
        proc.stop()
