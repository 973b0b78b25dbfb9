"""`python webui.py --nowebui --api --port N` end to end as a real process: start-up, no checkpoint, stop, port clash.

A1111 facts: `--nowebui` serves only the API (uvicorn); `--api-server-stop` enables `POST /sdapi/v1/server-stop`.
Ours: with no checkpoint the server still starts and says where to put one; a busy port is one line on stderr naming
the port and `--port`, exit status 1.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COMMANDLINE_ARGS", "GRADIO_SERVER_PORT")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_api_only_server_starts_without_a_checkpoint_and_stops(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "webui.py", "--nowebui", "--api", "--api-server-stop", "--port", str(port),
         "--data-dir", str(tmp_path)],
        cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/sdapi/v1/sd-models", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()[0]
                assert time.monotonic() < deadline, "server did not start in 60 s"
                time.sleep(0.3)
        assert response.status_code == 200 and response.json() == []
        assert httpx.get(f"http://127.0.0.1:{port}/sdapi/v1/samplers").status_code == 200
        assert httpx.post(f"http://127.0.0.1:{port}/sdapi/v1/server-stop").status_code == 200
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output
    assert f"Running on local URL: http://127.0.0.1:{port}/" in output
    assert "No checkpoints found" in output and str(tmp_path / "models" / "Stable-diffusion") in output


def test_busy_port_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "webui.py", "--nowebui", "--port", str(port), "--data-dir", str(tmp_path)],
            cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.stderr
    assert f"port {port} " in errors[0].lower() and "already in use" in errors[0] and "--port" in errors[0]
    assert "Traceback" not in result.stderr
