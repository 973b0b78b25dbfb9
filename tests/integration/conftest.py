"""A live server fixture: the real app (`modules.server.build_app`) served by uvicorn on a free loopback port.

`live_server(args, ui=None)` parses `args` like the command line (plus `--data-dir <temp dir>`), builds the app
context as `webui.py` does, binds 127.0.0.1:<free port>, serves in a background thread and returns a `LiveServer`
with the base URL, the context and an httpx client. Servers are stopped at the end of the test module, so each
test module starts one server per configuration it needs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest


@dataclass
class LiveServer:
    """A running server: `url` (no trailing slash), `ctx` (its AppContext), `data_dir`, an httpx `client`."""

    url: str
    ctx: Any
    data_dir: Path
    client: httpx.Client
    server: Any
    thread: threading.Thread
    notes: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.client.close()
        self.ctx.jobs.shutdown(cancel_pending=True, timeout=5)


LiveServerFactory = Callable[..., LiveServer]


def start_live_server(data_dir: Path, args: list[str], ui: Any = None,
                      ui_factory: Callable[[Any], Any] | None = None) -> LiveServer:
    """Start the app for `args` with `data_dir` and wait until it answers; `ui_factory(ctx)` builds the UI on the
    server's own context (so changes to `LiveServer.ctx` reach the UI)."""
    import uvicorn

    import webui
    from modules.cli.flags import parse_flags
    from modules.server import ServerHandle, bind_server_socket, build_app

    flags = parse_flags([*args, "--data-dir", str(data_dir)], env={})
    ctx = webui.build_context(flags, env={})
    if ui_factory is not None:
        ui = ui_factory(ctx)
    handle = ServerHandle(data_dir / "tmp" / "restart")
    app = build_app(ctx, ui, server_action=handle.action, env={})
    sock = bind_server_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    handle.server = server
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"live-server-{port}",
                              daemon=True)
    thread.start()
    sub = "/" + flags.subpath.strip("/") if flags.subpath else ""
    url = f"http://127.0.0.1:{port}{sub}"
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the test server on port {port} did not start")
        time.sleep(0.05)
    client = httpx.Client(base_url=url, timeout=60)
    return LiveServer(url, ctx, data_dir, client, server, thread, {"port": port, "handle": handle})


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServerFactory]:
    """Factory `(args, ui=None, data_dir=None) -> LiveServer`; every server it started stops after the module."""
    started: list[LiveServer] = []

    def make(args: list[str], ui: Any = None, data_dir: Path | None = None) -> LiveServer:
        folder = data_dir or tmp_path_factory.mktemp("webui-data")
        server = start_live_server(folder, args, ui)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def tiny_blocks() -> Any:
    """A minimal Gradio Blocks standing in for the real UI (one textbox and a button that echoes it)."""
    import gradio as gr

    with gr.Blocks(analytics_enabled=False) as demo:
        box = gr.Textbox(label="tiny-test-prompt")
        out = gr.Textbox(label="tiny-test-output")
        gr.Button("Echo").click(lambda text: text, inputs=box, outputs=out, api_name="echo")
    return demo
