"""The Gradio web UI (layer 4). `build_ui(ctx)` / `create_ui(ctx)` return the `gr.Blocks` the server mounts."""

from __future__ import annotations

from typing import Any

from modules.processing.context import AppContext


def build_ui(ctx: AppContext) -> Any:
    """Build the UI Blocks for `ctx` (imports Gradio only when called)."""
    from modules.ui.app import build_ui as _build

    return _build(ctx)


create_ui = build_ui


def __getattr__(name: str) -> Any:
    """A1111 `modules.ui` names extensions import (`create_refresh_button`, `gr_show`, the tool-button symbols,
    …; `modules.compat.ui`)."""
    from modules.compat.ui import attribute

    return attribute(name)
