"""Acceptance harness: the app exactly as `./webui.sh` builds it, driven only over HTTP (and the browser).

`webui_app(args, checkpoints=...)` lays out a data dir the way a user's install looks (tiny random-weight checkpoints
copied into `models/Stable-diffusion/`, any extra files the test writes before starting), builds the app through its
composition root `webui.create_app(flags + ["--data-dir", dir], env)`, starts the same background work as `main()`
(first-start check, default checkpoint loading) and serves it with uvicorn on a free loopback port. Tests get a
`RunningApp` with the URL, an httpx client and the data dir: no context, no collaborator, no internal call. A test
that needs something inside the app reaches it the way a user does (a request, a file in the data dir, a flag).
"""

from __future__ import annotations

import base64
import io
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import TinyCheckpointFactory


@dataclass
class RunningApp:
    """A served app: `url` (no trailing slash), `client` (httpx, base URL set), `data_dir`, `console` (what the
    app logged while it ran, for start-up messages a user reads in the terminal)."""

    url: str
    client: httpx.Client
    data_dir: Path
    _stop: Callable[[], None]
    _log: io.StringIO

    @property
    def console(self) -> str:
        return self._log.getvalue()

    def stop(self) -> None:
        self._stop()

    def txt2img(self, **payload: Any) -> dict[str, Any]:
        """POST /sdapi/v1/txt2img with small defaults (64×64, 2 Euler steps, seed 1); the JSON answer. Fails on
        a non-200 answer with the server's message."""
        body = {"prompt": "a cat", "width": 64, "height": 64, "steps": 2, "seed": 1, "sampler_name": "Euler",
                **payload}
        response = self.client.post("/sdapi/v1/txt2img", json=body)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    def wait_for_model(self, timeout: float = 60.0) -> None:
        """Wait until the start-up load has made a checkpoint current (`sd_model_checkpoint` in /options)."""
        self.wait_for("the checkpoint loaded",
                      lambda: bool(self.client.get("/sdapi/v1/options").json().get("sd_model_checkpoint")), timeout)

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
        """Poll `check()` until true (fails the test naming `what` after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.1)


def set_number(page: Any, elem_id: str, value: Any) -> None:
    """Type `value` into the number box of Gradio component `elem_id` and leave it (the change event fires)."""
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(str(value))
    box.press("Tab")


def two_image_dataset(data_dir: Path) -> None:
    """`train-images/` with a red and a blue 64×64 picture whose file names are their captions (training tests)."""
    folder = data_dir / "train-images"
    folder.mkdir()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(folder / "red thing.png")
    Image.new("RGB", (64, 64), (30, 30, 200)).save(folder / "blue thing.png")


def decode_png(b64: str) -> Image.Image:
    """An image from the API's base64 answer."""
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def lay_out_data_dir(data_dir: Path, tiny_checkpoint: TinyCheckpointFactory,
                     checkpoints: Mapping[str, str]) -> None:
    """`checkpoints` maps file names (e.g. "sd1.safetensors", "sub/x.safetensors") to tiny families."""
    models = data_dir / "models" / "Stable-diffusion"
    models.mkdir(parents=True, exist_ok=True)
    for name, family in checkpoints.items():
        fmt = "ckpt" if name.endswith(".ckpt") else "safetensors"
        target = models / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tiny_checkpoint(family, fmt=fmt), target)


def serve(args: Sequence[str], data_dir: Path, env: Mapping[str, str] | None = None,
          bind: str = "127.0.0.1") -> RunningApp:
    """Build the app through `webui.create_app` and serve it on <bind>:<free port> (the URL uses 127.0.0.1; bind
    "0.0.0.0" to reach it from other loopback addresses such as 127.0.0.2, as clients on a LAN would)."""
    import logging

    import uvicorn

    import webui
    from modules.server import bind_server_socket

    log = io.StringIO()
    handler = logging.StreamHandler(log)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    app = webui.create_app([*args, "--data-dir", str(data_dir)], dict(env or {}))
    app.start_background_work()
    sock = bind_server_socket(bind, 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app.asgi, log_level="warning"))
    app.handle.server = server
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"acceptance-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the app on port {port} did not start")
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, timeout=120)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        client.close()
        app.shutdown()
        logging.getLogger().removeHandler(handler)

    return RunningApp(url, client, data_dir, stop, log)


WebUIFactory = Callable[..., RunningApp]


@pytest.fixture(scope="module")
def webui_app(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: TinyCheckpointFactory
              ) -> Iterator[WebUIFactory]:
    """Factory `(args, checkpoints={"sd1.safetensors": "sd1"}, data_dir=None, prepare=None) -> RunningApp`.

    `prepare(data_dir)` runs before the app starts (write config.json, a VAE, a script…). Every app started here
    stops at the end of the module."""
    started: list[RunningApp] = []

    def make(args: Sequence[str] = ("--api",), *, checkpoints: Mapping[str, str] | None = None,
             data_dir: Path | None = None, prepare: Callable[[Path], None] | None = None,
             env: Mapping[str, str] | None = None, bind: str = "127.0.0.1") -> RunningApp:
        folder = data_dir or tmp_path_factory.mktemp("webui-data")
        lay_out_data_dir(folder, tiny_checkpoint, {"sd1.safetensors": "sd1"} if checkpoints is None else checkpoints)
        if prepare is not None:
            prepare(folder)
        running = serve(args, folder, env, bind)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


# Browser tests of the acceptance suite reuse the Playwright fixture and page helper of tests/browser.
from tests.browser.conftest import browser, open_ui  # noqa: E402,F401
