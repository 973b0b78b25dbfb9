"""The UI builds without Gradio layout warnings (A1111's txt2img/img2img extra-network tabs sit in one gr.Tabs)."""

from __future__ import annotations

import warnings
from pathlib import Path


def test_build_ui_puts_only_tabs_in_tabs(tmp_path: Path) -> None:
    import webui
    from modules.cli.flags import parse_flags
    from modules.ui import build_ui

    ctx = webui.build_context(parse_flags(["--data-dir", str(tmp_path)], env={}), env={})
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            build_ui(ctx)
    finally:
        ctx.jobs.shutdown(cancel_pending=True, timeout=5)
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "can only contain gr.Tab" in m], messages
