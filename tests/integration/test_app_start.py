"""The app as a user starts it: `./webui.sh` from the clone, the start-up text, first start without a checkpoint.

A1111 facts (reference §1–2): `webui.sh` refuses root unless `-f`; `VENV_DIR=-` runs without a virtual environment;
`COMMANDLINE_ARGS` is split like a shell and appended to the command line; `--skip-prepare-environment` skips the
installs; `--api` mounts `/sdapi/v1` on the UI server; with no checkpoint A1111 downloads SD1.5 unless
`--no-download-sd-model` (honouring `HF_ENDPOINT`); `--share` without `--gradio-auth` is warned about.
Ours: the start-up text names the torch version, CUDA availability, device, dtype and attention backend, and says
how long start-up and the model load took; a failing job reports its error and the next job runs normally.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
SMALL = {"prompt": "a red cube", "steps": 1, "width": 64, "height": 64, "seed": 3}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("COMMANDLINE_ARGS", "GRADIO_SERVER_PORT", "HF_ENDPOINT", "HF_HUB_OFFLINE")}
    env.update(PYTHONUNBUFFERED="1", PYTHON=sys.executable, VENV_DIR="-", **extra)
    return env


class Process:
    """A started server process in its own process group, its output in a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=self._out, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_http(self, url: str, timeout: float = 90) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while True:
            try:
                response = httpx.get(url, timeout=5)
                if response.status_code == 200:
                    return response
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None, f"the server exited:\n{self.output()}"
            assert time.monotonic() < deadline, f"no answer from {url} in {timeout} s:\n{self.output()}"
            time.sleep(0.25)

    def stop(self) -> int:
        """SIGINT to the whole group (Ctrl+C in the terminal); every process of the group must end."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                raise AssertionError(f"the server did not stop on Ctrl+C:\n{self.output()}") from None
        self._out.close()
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return self.proc.returncode
        os.killpg(self.proc.pid, signal.SIGKILL)
        raise AssertionError("a process of the server's group was still running after it stopped")


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint) -> Iterator[dict[str, Any]]:
    """`./webui.sh -f` as the README says, data dir with spaces and non-ASCII, a tiny checkpoint in --ckpt-dir
    next to one that cannot be loaded."""
    root = tmp_path_factory.mktemp("start")
    data = root / "my data ü 日本"
    ckpts = root / "check points"
    ckpts.mkdir()
    shutil.copy2(tiny_checkpoint("sd1"), ckpts / "tiny-sd1.safetensors")
    (ckpts / "zz-broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    port = free_port()
    args = ["--skip-prepare-environment", "--api", "--port", str(port), "--data-dir", str(data),
            "--ckpt-dir", str(ckpts), "--no-download-sd-model"]
    env = clean_env(COMMANDLINE_ARGS=shlex.join(args))
    proc = Process(["bash", str(REPO / "webui.sh"), "-f"], env, root / "webui.log")
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/")
        yield {"proc": proc, "url": f"http://127.0.0.1:{port}", "data": data}
    finally:
        proc.stop()


def test_webui_sh_serves_the_ui_and_the_api_with_the_tiny_checkpoint(launched: dict[str, Any]) -> None:
    url = launched["url"]
    assert httpx.get(f"{url}/").status_code == 200
    models = httpx.get(f"{url}/sdapi/v1/sd-models", timeout=10).json()
    assert {m["model_name"] for m in models} == {"tiny-sd1", "zz-broken"}
    assert launched["data"].is_dir() and (launched["data"] / "models" / "Stable-diffusion").is_dir()


def test_startup_prints_diagnostics_and_load_times(launched: dict[str, Any]) -> None:
    proc = launched["proc"]
    response = httpx.post(f"{launched['url']}/sdapi/v1/txt2img", json=SMALL, timeout=120)
    assert response.status_code == 200, response.text  # the default model is loaded by now
    import torch

    deadline = time.monotonic() + 30  # the start-up load prints from its own thread, right after the load
    while "Model loaded in " not in proc.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    text = proc.output()
    assert f"torch {torch.__version__}" in text and f"CUDA available: {torch.cuda.is_available()}" in text
    assert "Device: cpu, dtype: " in text and ", attention: " in text
    startup_line = text.split("Startup time: ", 1)[1].splitlines()[0]
    assert "s (" in startup_line
    # the imports count too (A1111 "import torch", "import gradio", "other imports"): the process start to the page
    assert re.search(r"\(import torch: [0-9.]+s, import gradio: [0-9.]+s, other imports: [0-9.]+s", startup_line)
    # A1111's breakdown: stages under 0.1 s are left out of the parentheses
    assert re.search(r"Model loaded in [0-9.]+s \((load weights from disk|create [^:]+): [0-9.]+s", text), text
    assert "Running on local URL: " in text


def test_failing_job_reports_its_error_and_the_next_job_runs(launched: dict[str, Any]) -> None:
    url = launched["url"]
    failed = httpx.post(f"{url}/sdapi/v1/txt2img", timeout=120,
                        json={**SMALL, "override_settings": {"sd_model_checkpoint": "zz-broken"}})
    assert failed.status_code >= 400, failed.text
    body = failed.json()
    assert set(body) >= {"error", "detail"} and "zz-broken" in body["detail"]
    assert "Traceback" not in body["detail"]
    ok = httpx.post(f"{url}/sdapi/v1/txt2img", json=SMALL, timeout=120)
    assert ok.status_code == 200, ok.text
    assert "Model: tiny-sd1" in ok.json()["info"]
    assert httpx.get(f"{url}/sdapi/v1/progress").json()["state"]["job_count"] == 0


def start_api_only(root: Path, *extra: str, env: dict[str, str]) -> tuple[Process, str]:
    port = free_port()
    proc = Process([sys.executable, "webui.py", "--nowebui", "--port", str(port), "--data-dir", str(root), *extra],
                   env, root / "webui.log")
    return proc, f"http://127.0.0.1:{port}"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def test_first_start_without_a_checkpoint(tmp_path: Path) -> None:
    """Two first starts at once: `--no-download-sd-model` says where to put a model; with `HF_ENDPOINT` the mirror
    is used, a file whose sha256 is not SD1.5's is refused and deleted (plus `--share` without auth is warned
    about). Both UIs start without a model."""
    mirror = tmp_path / "mirror"
    fake = mirror / "stable-diffusion-v1-5" / "stable-diffusion-v1-5" / "resolve" / "main"
    fake.mkdir(parents=True)
    (fake / "v1-5-pruned-emaonly.safetensors").write_bytes(b"not the real model" * 1000)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(mirror)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    offline, mirrored = tmp_path / "offline", tmp_path / "mirrored"
    offline.mkdir()
    mirrored.mkdir()
    started = [start_api_only(offline, "--no-download-sd-model", env=clean_env()),
               start_api_only(mirrored, "--share", env=clean_env(
                   HF_ENDPOINT=f"http://127.0.0.1:{server.server_address[1]}"))]
    try:
        for proc, url in started:
            assert proc.wait_http(f"{url}/sdapi/v1/sd-models").json() == []
    finally:
        server.shutdown()
        for proc, _url in started:
            proc.stop()
    text = started[0][0].output()
    assert "--no-download-sd-model" in text and str(offline / "models" / "Stable-diffusion") in text
    assert "Traceback" not in text
    text = started[1][0].output()
    assert "sha256 mismatch for v1-5-pruned-emaonly.safetensors" in text, text
    assert [p.name for p in (mirrored / "models" / "Stable-diffusion").iterdir()] == []
    assert "Warning: --share makes the UI public" in text and "--gradio-auth" in text
    assert "Traceback" not in text
