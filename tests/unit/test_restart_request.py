""""Apply and restart UI": with webui.sh's SD_WEBUI_RESTART the request writes tmp/restart and stops the server."""

from __future__ import annotations

import time
import types
from pathlib import Path

from modules.server import ServerHandle
from webui import wire_restart


def test_restart_request_writes_marker_and_stops_server(tmp_path: Path) -> None:
    ctx = types.SimpleNamespace(request_restart=None)
    handle = ServerHandle(tmp_path / "tmp" / "restart")
    handle.server = types.SimpleNamespace(should_exit=False)
    wire_restart(ctx, handle.action, {"SD_WEBUI_RESTART": "tmp/restart"})
    ctx.request_restart()
    assert (tmp_path / "tmp" / "restart").is_file()
    for _ in range(50):
        if handle.server.should_exit:
            break
        time.sleep(0.05)
    assert handle.server.should_exit


def test_no_restart_without_launcher() -> None:
    ctx = types.SimpleNamespace(request_restart=None)
    wire_restart(ctx, lambda what: None, {})
    assert ctx.request_restart is None  # the Extensions tab then says to restart manually
