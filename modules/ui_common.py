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


def save_files(js_data: str, images: list[Any], do_make_zip: bool, index: int) -> tuple[dict[str, Any], str]:
    """What A1111's 💾/🗃️ buttons call, for extensions (images-browser's "Save"): `js_data` is the job's JSON
    (`infotexts`, `index_of_first_image`, …), `images` the gallery value — (image or path, caption) pairs, file dicts,
    or base64 PNG strings; files go to `opts.outdir_save` (with a `log.csv` row) as the app's own buttons save them
    (`modules/ui/save_files.py`). Returns A1111's `(file update with the written paths, "Saved: <first>" html)`."""
    import base64
    import tempfile
    from pathlib import Path

    from PIL import Image

    from modules.compat.host import HOST
    from modules.ui.save_files import NothingToSave
    from modules.ui.save_files import save_files as save

    with tempfile.TemporaryDirectory() as folder:
        paths: list[str] = []
        for n, entry in enumerate(images or []):
            item = entry[0] if isinstance(entry, tuple | list) else entry
            if isinstance(item, dict):
                item = item.get("path") or item.get("name")
            if isinstance(item, str) and not Path(item).is_file():  # base64 (A1111 also takes data: URLs)
                target = Path(folder) / f"{n}.png"
                target.write_bytes(base64.b64decode(item.split(",", 1)[-1]))
                item = str(target)
            if isinstance(item, Image.Image):
                target = Path(folder) / f"{n}.png"
                item.save(target)
                item = str(target)
            paths.append(str(item))
        try:
            saved = save(HOST.current(), js_data, paths, bool(do_make_zip), index)
        except NothingToSave as exc:
            return {"__type__": "update"}, plaintext_to_html(str(exc))
    files = [str(f) for f in saved.files]
    return {"__type__": "update", "value": files, "visible": True}, plaintext_to_html(
        f"Saved: {saved.names[0] if saved.names else ''}")


__all__ = ["ToolButton", "create_refresh_button", "folder_symbol", "plaintext_to_html", "refresh_symbol",
           "save_files"]
