"""A1111 `modules.ui` names extensions import (`from modules.ui import create_refresh_button, gr_show`), served by
`modules/ui/__init__.py`'s module `__getattr__` so `import modules.ui` stays free of Gradio until one is used.

* `create_refresh_button`, `plaintext_to_html`: the `modules.ui_common` ones (A1111 moved them there in 1.6 and
  kept these names in `modules.ui`);
* `gr_show(visible=True)`: an update that shows/hides a component (A1111 helper);
* the tool-button symbols A1111 defines in `ui.py` (`refresh_symbol`, `save_style_symbol`, `paste_symbol`, …),
  the same characters this UI's own buttons use;
* `versions_html()`: the footer's version line.
"""

from __future__ import annotations

import html
import platform
from typing import Any

random_symbol = "\U0001f3b2\ufe0f"  # 🎲️
reuse_symbol = "\u267b\ufe0f"  # ♻️
paste_symbol = "\u2199\ufe0f"  # ↙
refresh_symbol = "\U0001f504"  # 🔄
save_style_symbol = "\U0001f4be"  # 💾
apply_style_symbol = "\U0001f4cb"  # 📋
clear_prompt_symbol = "\U0001f5d1\ufe0f"  # 🗑️
extra_networks_symbol = "\U0001f3b4"  # 🎴
switch_values_symbol = "\u21c5"  # ⇅
restore_progress_symbol = "\U0001f300"  # 🌀
detect_image_size_symbol = "\U0001f4d0"  # 📐
folder_symbol = "\U0001f4c2"  # 📂

SYMBOLS = ("random_symbol", "reuse_symbol", "paste_symbol", "refresh_symbol", "save_style_symbol",
           "apply_style_symbol", "clear_prompt_symbol", "extra_networks_symbol", "switch_values_symbol",
           "restore_progress_symbol", "detect_image_size_symbol", "folder_symbol")


def gr_show(visible: bool = True) -> dict[str, Any]:
    """A Gradio update showing (or hiding) a component (A1111 `ui.gr_show`)."""
    return {"visible": visible, "__type__": "update"}


def versions_html() -> str:
    """The version line A1111 shows in the footer (python, torch, gradio)."""
    import gradio
    import torch

    from modules.launch_utils import git_tag

    parts = [f"version: {git_tag()}", f"python: {platform.python_version()}", f"torch: {torch.__version__}",
             f"gradio: {gradio.__version__}"]
    return "&#x2000;•&#x2000;".join(html.escape(p) for p in parts)


def attribute(name: str) -> Any:
    """The value of A1111 `modules.ui.<name>` (AttributeError naming the name when it is not provided)."""
    if name in SYMBOLS:
        return globals()[name]
    if name in ("gr_show", "versions_html"):
        return globals()[name]
    if name in ("create_refresh_button", "plaintext_to_html"):
        import modules.ui_common as ui_common

        return getattr(ui_common, name)
    raise AttributeError(f"module 'modules.ui' has no attribute {name!r} in this web UI "
                         "(see docs/extensions.md for the supported A1111 names)")


__all__ = ["SYMBOLS", "attribute", "gr_show", "versions_html", *SYMBOLS]
