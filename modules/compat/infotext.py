"""A1111 `modules.infotext_utils` (formerly `generation_parameters_copypaste`) names for extensions.

`parse_generation_parameters(x, skip_fields=None)` → A1111's dict ("Prompt", "Negative prompt", "Steps",
"Size-1", …; `skip_fields` defaults to the `infotext_skip_pasting` setting); `quote`, `unquote`;
`image_from_url_text`. The send-to button registry (`create_buttons`, `bind_buttons`,
`register_paste_params_button`) is not provided (docs/extensions.md).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from typing import Any

from PIL import Image

from modules.compat.host import HOST
from modules.images import parse_infotext, quote, unquote


def parse_generation_parameters(x: str, skip_fields: Iterable[str] | None = None) -> dict[str, Any]:
    """Parse an infotext the A1111 way (with the running app's `infotext_skip_pasting` when no fields given)."""
    if skip_fields is None:
        skip_fields = HOST.current().settings.get("infotext_skip_pasting") if HOST.running() else ()
    return parse_infotext(x, skip_fields=list(skip_fields or ()))


def image_from_url_text(filedata: Any) -> Image.Image | None:
    """An image from a `data:image/...;base64,` string, a Gradio file dict or a path (A1111 helper)."""
    if filedata is None:
        return None
    if isinstance(filedata, list):
        filedata = filedata[0] if filedata else None
        if filedata is None:
            return None
    if isinstance(filedata, dict):
        filedata = filedata.get("path") or filedata.get("name") or filedata.get("url")
    if isinstance(filedata, str) and filedata.startswith("data:image/"):
        return Image.open(io.BytesIO(base64.b64decode(filedata.split(",", 1)[1])))
    return Image.open(str(filedata)) if filedata else None


__all__ = ["image_from_url_text", "parse_generation_parameters", "quote", "unquote"]
