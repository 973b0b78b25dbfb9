"""Compatibility: A1111 `modules.extras` names for extensions (docs/extensions.md).

`run_pnginfo(image)` → `("", geninfo, info_html)` as A1111 returns it: the `parameters` infotext of the image and
an HTML listing of every text item — the PNG Info tab's own reading (`modules.ui.pnginfo.describe_image`, which
reads through `modules.images.read_info_from_image`). Image browsers call it for each file they list.
"""

from __future__ import annotations

from typing import Any


def run_pnginfo(image: Any) -> tuple[str, str, str]:
    """("", the image's infotext, HTML of all its text items); three empty strings for no image (A1111)."""
    if image is None:
        return "", "", ""
    from modules.ui.pnginfo import describe_image

    info_html, geninfo = describe_image(image)
    return "", geninfo, info_html


__all__ = ["run_pnginfo"]
