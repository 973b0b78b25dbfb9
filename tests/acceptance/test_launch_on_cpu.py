"""`./webui.sh -f` — the README's one command, with no extra flags — starts on a machine without an NVIDIA GPU:
one clear warning about speed, then the app runs on the CPU (A1111 would stop at "Torch is not able to use GPU")."""

from __future__ import annotations

import shlex
from pathlib import Path

import httpx
import pytest
import torch

from tests.conftest import TinyCheckpointFactory
from tests.integration.test_app_start import REPO, SMALL, Process, clean_env, free_port


@pytest.mark.skipif(torch.cuda.is_available(), reason="this checks the start-up of a machine without a GPU")
def test_webui_sh_starts_on_the_cpu_with_one_warning(tmp_path: Path, tiny_checkpoint: TinyCheckpointFactory) -> None:
    data = tmp_path / "data"
    (data / "models" / "Stable-diffusion").mkdir(parents=True)
    (data / "models" / "Stable-diffusion" / "sd1.safetensors").symlink_to(tiny_checkpoint("sd1"))
    port = free_port()
    args = ["--api", "--port", str(port), "--data-dir", str(data)]
    proc = Process(["bash", str(REPO / "webui.sh"), "-f"], clean_env(COMMANDLINE_ARGS=shlex.join(args)),
                   tmp_path / "webui.log")
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/", timeout=240)
        response = httpx.post(f"http://127.0.0.1:{port}/sdapi/v1/txt2img", json=SMALL, timeout=120)
        assert response.status_code == 200, response.text
        text = proc.output()
        assert text.count("Torch is not able to use a GPU") == 1, text
        assert "Running on the CPU instead" in text and "Device: cpu" in text
        assert "has no effect" not in text, text
    finally:
        proc.stop()
