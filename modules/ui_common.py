"""Compatibility: A1111 `modules.ui_common` names for extensions (docs/extensions.md): `plaintext_to_html(text,
classname=None)`, `create_refresh_button(refresh_component, refresh_method, refreshed_args, elem_id)`,
`ToolButton`, `refresh_symbol`, `folder_symbol`."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import gradio as gr

from modules.compat.ui_components import ToolButton

refresh_symbol = "\U0001f504"  # 🔄
folder_symbol = "\U0001f4c2"  # 📂


def plaintext_to_html(text: str, classname: str | None = None) -> str:
    """Text as `<p>` lines, escaped (A1111 `plaintext_to_html`)."""
    content = "<br>\n".join(html.escape(x) for x in text.split("\n"))
    return f"<p class='{classname}'>{content}</p>" if classname else f"<p>{content}</p>"


def create_refresh_button(refresh_component: Any, refresh_method: Callable[[], None],
                          refreshed_args: dict[str, Any] | Callable[[], dict[str, Any]], elem_id: str) -> gr.Button:
    """A 🔄 button: calls `refresh_method()`, then updates the component(s) with `refreshed_args` (A1111)."""
    components = refresh_component if isinstance(refresh_component, list) else [refresh_component]

    def refresh() -> Any:
        refresh_method()
        args = refreshed_args() if callable(refreshed_args) else refreshed_args
        for component in components:
            for key, value in args.items():
                setattr(component, key, value)
        updates = [gr.update(**args) for _ in components]
        return updates if len(updates) > 1 else updates[0]

    button = ToolButton(value=refresh_symbol, elem_id=elem_id)
    button.click(fn=refresh, inputs=[], outputs=components)
    return button


__all__ = ["ToolButton", "create_refresh_button", "folder_symbol", "plaintext_to_html", "refresh_symbol"]
