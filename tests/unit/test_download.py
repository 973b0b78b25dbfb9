"""The first-start model download against a local HTTP server with Range support (no internet needed)."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from modules.runtime.download import (
    DEFAULT_SD_MODEL,
    ChecksumError,
    ConsoleProgress,
    DownloadError,
    ModelFile,
    OfflineError,
    download_file,
    ensure_default_checkpoint,
    find_checkpoints,
    hf_url,
)

PAYLOAD = os.urandom(3 * 1024 * 1024 + 123)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class Served:
    """What the server saw: one entry per request."""

    paths: list[str] = field(default_factory=list)
    ranges: list[str | None] = field(default_factory=list)
    bytes_sent: list[int] = field(default_factory=list)
    ignore_range: bool = False
    cut_after: int | None = None  # close the connection after this many bytes of the next response


def _handler(served: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            served.paths.append(self.path)
            header = self.headers.get("Range")
            served.ranges.append(header)
            if "missing" in self.path:
                served.bytes_sent.append(0)
                self.send_error(404, "Not Found")
                return
            start = 0
            if header and not served.ignore_range:
                start = int(header.removeprefix("bytes=").split("-")[0])
                if start >= len(PAYLOAD):
                    served.bytes_sent.append(0)  # recorded before answering: the client may be done at once
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
            else:
                self.send_response(200)
            body = PAYLOAD[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if served.cut_after is not None:
                body = body[: served.cut_after]
                served.cut_after = None
                self.close_connection = True
            served.bytes_sent.append(len(body))
            self.wfile.write(body)

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Served]]:
    served = Served()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()
    httpd.server_close()


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NO_PROXY_ENV: dict[str, str] = {}


def test_full_download_is_verified_and_renamed(server, tmp_path: Path) -> None:
    base, served = server
    out = io.StringIO()
    path = download_file(f"{base}/model.safetensors", tmp_path / "m.safetensors", sha256=SHA, env=NO_PROXY_ENV,
                         progress=out, chunk_size=64 * 1024)
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "m.safetensors.part").exists()
    assert served.ranges == [None]
    assert "Downloading:" in out.getvalue() and "100%" in out.getvalue()


def test_resume_requests_only_the_remaining_bytes(server, tmp_path: Path) -> None:
    base, served = server
    have = 1_000_000
    (tmp_path / "m.safetensors.part").write_bytes(PAYLOAD[:have])
    path = download_file(f"{base}/model.safetensors", tmp_path / "m.safetensors", sha256=SHA, env=NO_PROXY_ENV,
                         progress=None)
    assert path.read_bytes() == PAYLOAD
    assert served.ranges == [f"bytes={have}-"]
    assert served.bytes_sent == [len(PAYLOAD) - have]


def test_broken_transfer_keeps_the_part_file_and_the_next_run_resumes(server, tmp_path: Path) -> None:
    base, served = server
    served.cut_after = 500_000
    dest = tmp_path / "m.safetensors"
    with pytest.raises(DownloadError, match="start again to resume"):
        download_file(f"{base}/m", dest, sha256=SHA, env=NO_PROXY_ENV, progress=None, chunk_size=64 * 1024)
    assert not dest.exists()
    assert (tmp_path / "m.safetensors.part").stat().st_size == 500_000
    download_file(f"{base}/m", dest, sha256=SHA, env=NO_PROXY_ENV, progress=None)
    assert dest.read_bytes() == PAYLOAD
    assert served.ranges == [None, "bytes=500000-"]
    assert served.bytes_sent[1] == len(PAYLOAD) - 500_000


def test_complete_part_file_is_only_verified(server, tmp_path: Path) -> None:
    base, served = server
    (tmp_path / "m.part").write_bytes(PAYLOAD)
    download_file(f"{base}/m", tmp_path / "m", sha256=SHA, env=NO_PROXY_ENV, progress=None)
    assert (tmp_path / "m").read_bytes() == PAYLOAD
    assert served.bytes_sent == [0]  # 416: nothing left to send


def test_server_without_range_support_restarts_from_zero(server, tmp_path: Path) -> None:
    base, served = server
    served.ignore_range = True
    (tmp_path / "m.part").write_bytes(b"garbage that must not be kept")
    download_file(f"{base}/m", tmp_path / "m", sha256=SHA, env=NO_PROXY_ENV, progress=None)
    assert (tmp_path / "m").read_bytes() == PAYLOAD


def test_bad_checksum_deletes_the_part_file_and_leaves_no_final_file(server, tmp_path: Path) -> None:
    base, _ = server
    dest = tmp_path / "m.safetensors"
    with pytest.raises(ChecksumError) as info:
        download_file(f"{base}/m", dest, sha256="0" * 64, env=NO_PROXY_ENV, progress=None)
    message = str(info.value)
    assert "sha256 mismatch for m.safetensors" in message and "0" * 64 in message and SHA in message
    assert not dest.exists()
    assert not (tmp_path / "m.safetensors.part").exists()


def test_http_error_is_named(server, tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(f"{base}/missing", tmp_path / "x", env=NO_PROXY_ENV, progress=None)


def test_hf_endpoint_is_honoured(server, tmp_path: Path) -> None:
    base, served = server
    model = ModelFile("org/repo", "tiny model.safetensors", SHA)
    assert hf_url(model, {}) == "https://huggingface.co/org/repo/resolve/main/tiny%20model.safetensors"
    assert hf_url(DEFAULT_SD_MODEL, {"HF_ENDPOINT": "https://hf-mirror.com/"}) == (
        "https://hf-mirror.com/stable-diffusion-v1-5/stable-diffusion-v1-5/resolve/main/v1-5-pruned-emaonly.safetensors")
    models = tmp_path / "models" / "Stable-diffusion"
    path = ensure_default_checkpoint(models, env={"HF_ENDPOINT": base}, model=model, out=None, progress=None)
    assert path == models / "tiny model.safetensors"
    assert path.read_bytes() == PAYLOAD
    assert served.paths == ["/org/repo/resolve/main/tiny%20model.safetensors"]


def test_proxy_variables_are_honoured(server, tmp_path: Path) -> None:
    """With http_proxy set, the request goes to the proxy with the absolute URL; no_proxy bypasses it."""
    base, served = server
    download_file("http://models.invalid/file", tmp_path / "f", sha256=SHA, env={"http_proxy": base}, progress=None)
    assert served.paths == ["http://models.invalid/file"]
    with pytest.raises(OfflineError):
        download_file("http://models.invalid/file", tmp_path / "g", env={"HTTP_PROXY": base,
                                                                        "no_proxy": "models.invalid"}, progress=None)


def test_offline_start_prints_where_to_put_a_model(tmp_path: Path) -> None:
    models = tmp_path / "models" / "Stable-diffusion"
    out = io.StringIO()
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{_refused_port()}"}
    assert ensure_default_checkpoint(models, env=env, out=out, progress=None) is None
    message = out.getvalue()
    assert "connection was refused" in message
    assert str(models) in message and ".safetensors" in message and "starts without a model" in message
    assert "HF_ENDPOINT=https://hf-mirror.com" in message
    assert not any(models.iterdir())

    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE"):
        download_file("http://127.0.0.1:1/x", tmp_path / "x", env={"HF_HUB_OFFLINE": "1"}, progress=None)


def test_no_download_flag_and_existing_checkpoints_mean_no_request(server, tmp_path: Path) -> None:
    base, served = server
    models = tmp_path / "Stable-diffusion"
    out = io.StringIO()
    assert ensure_default_checkpoint(models, no_download=True, env={"HF_ENDPOINT": base}, out=out) is None
    assert "--no-download-sd-model" in out.getvalue() and str(models) in out.getvalue()
    (models / "sub").mkdir(parents=True)
    (models / "sub" / "only.vae.safetensors").write_bytes(b"x")  # a VAE is not a checkpoint
    extra = tmp_path / "ckpt dir"
    extra.mkdir()
    (extra / "mine.ckpt").write_bytes(b"x")
    assert find_checkpoints([models, extra, None]) == [extra / "mine.ckpt"]
    assert find_checkpoints([extra / "mine.ckpt", models / "sub" / "only.vae.safetensors"]) == [extra / "mine.ckpt"]
    assert ensure_default_checkpoint(models, extra_paths=[extra], env={"HF_ENDPOINT": base}, out=None) is None
    assert ensure_default_checkpoint(models, extra_paths=[extra / "mine.ckpt"], env={"HF_ENDPOINT": base},
                                     out=None) is None
    assert served.paths == []


def test_progress_line_shows_percent_size_speed_and_eta() -> None:
    bar = ConsoleProgress(None, total=4 * 1024 * 1024, initial=1024 * 1024)
    bar._start -= 2.0
    bar.done = 3 * 1024 * 1024  # 2 MB in 2 s → 1 MB/s, 1 MB left
    line = bar.line(bar._start + 2.0)
    assert line.startswith(" 75%|")
    assert "3.0MB/4.0MB" in line and "[1.0MB/s, ETA 0:01]" in line
